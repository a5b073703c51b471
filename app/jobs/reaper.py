"""The periodic pass that finishes what workers and lost enqueues left behind."""

from __future__ import annotations

import logging

from . import lease
from .context import JobContext, JobKind
from .scoring import RESCORE, SCORING
from .verification import VERIFICATION

log = logging.getLogger(__name__)

MODELS: dict[JobKind, lease.LeasedModel] = {
    job.kind: job.model for job in (SCORING, VERIFICATION, RESCORE)}


def reap_and_requeue(ctx: JobContext) -> int:
    """Reap every kind of job row and enqueue again those it put back. Returns their count."""
    total = 0
    for kind, model in MODELS.items():
        ids = lease.reap(ctx, model)
        for row_id in ids:
            ctx.enqueue(kind, row_id)
        if ids:
            log.warning("re-queued %s jobs with expired leases or lost enqueues: %s", kind, ids)
        total += len(ids)
    return total
