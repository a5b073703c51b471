"""How precisely a per-submission metric is shown to whom.

A full-precision log-loss on the public split is a label oracle: move one row's prediction,
resubmit, and the change in the sixth decimal tells that row's label. Until the private split
is revealed, participants (and anonymous readers) see such metrics rounded to
`PARTICIPANT_DIGITS` decimals; organisers always see full precision.
"""

from __future__ import annotations

PARTICIPANT_DIGITS = 4


def full_precision(*, organiser: bool, revealed: bool) -> bool:
    return organiser or revealed


def shown(value: float | None, *, full: bool) -> float | None:
    """`value` as a viewer may see it: unchanged when `full`, else rounded."""
    if value is None or full:
        return value
    return round(value, PARTICIPANT_DIGITS)
