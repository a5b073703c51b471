"""The leaderboard service: builds boards from the DB, caches them and their renderings.

Every request asks the DB for a cheap version token (`repository.version_token`); while it is
unchanged the board, its JSON, CSV and HTML are served from memory, so a busy leaderboard costs
one small query per request. Tie groups are cached separately per column (`groups.py`), and a
board whose groups are still being computed is not cached, so the next request picks them up.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from app import challenge
from app.config import Settings
from app.disclosure import PARTICIPANT_DIGITS
from app.errors import database_unreachable
from app.models import Submission
from app.phases import ladder
from app.phases import store as phases_store
from app.phases.selection import ensure_locked
from app.storage import load_predictions
from evaluator.compare import roc_quantile_points
from evaluator.data.prepared import META_FILE, PreparedData, PreparedDataError
from evaluator.schema import TASKS, Country, Split, Task, parse_country

from . import repository
from .groups import ColumnData, GroupCache
from .plots import HistoryPoint as HistoryPoint
from .plots import history_svg
from .reference import all_reported_rows
from .rows import ColumnRows, column_rows
from .view import Board, Column, Entry, Ranking, build_board, columns_for, latest_per_row

log = logging.getLogger(__name__)

T = TypeVar("T")
ROC_CACHE_SIZE = 256


@dataclass(frozen=True)
class Encoded:
    """A rendered body, compressed once when it is made, and its entity tag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, text: str | bytes) -> Encoded:
        body = text.encode() if isinstance(text, str) else text
        digest = hashlib.sha256(body).hexdigest()[:32]
        return cls(body=body, gzipped=gzip.compress(body, compresslevel=6, mtime=0),
                   etag=f'"{digest}"')


Audience = Literal["public", "organiser"]


class LeaderboardService:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.now: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.groups = GroupCache(on_change=self._groups_changed)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._token: tuple[Any, ...] | None = None
        self._checked_at = float("-inf")
        self._outputs: dict[tuple[Any, ...], Any] = {}
        self._stale: dict[tuple[Any, ...], Any] = {}
        # Per thread: whether the last `_cached` call served a copy without reaching the
        # database (the router marks that response as possibly stale).
        self._served_stale = threading.local()
        # Each open test set with the signature of its meta file: a set prepared again (new
        # meta, new memory maps) is noticed; a missing one is not remembered.
        self._prepared: dict[Country, tuple[tuple[int, int, int], PreparedData]] = {}
        self._rows: dict[tuple[Country, Split, Task], ColumnRows] = {}
        self._roc: OrderedDict[tuple[Any, ...], dict[Task, list[tuple[float, float]]]] = (
            OrderedDict())

    # ------------------------------------------------------------------ prepared test sets

    def prepared(self, country: Country) -> PreparedData | None:
        path = Path(self.settings.data_dir) / "prepared" / country
        try:
            meta = (path / META_FILE).stat()
        except OSError as exc:
            log.info("no prepared test set for %s: %s", country, exc)
            return None
        signature = (meta.st_ino, meta.st_mtime_ns, meta.st_size)
        with self._lock:
            known = self._prepared.get(country)
            if known is not None and known[0] == signature:
                return known[1]
        try:
            data = PreparedData.open(path)
        except (PreparedDataError, OSError) as exc:
            log.info("no prepared test set for %s: %s", country, exc)
            return None
        with self._lock:
            if known is not None:
                # Prepared again: the rows and curves computed from the old set go with it.
                self._rows = {k: v for k, v in self._rows.items() if k[0] != country}
                self._roc.clear()
                self.groups.forget_country(country)
            self._prepared[country] = (signature, data)
        return data

    def _column_rows(self, country: Country, split: Split, task: Task) -> ColumnRows | None:
        key = (country, split, task)
        with self._lock:
            if key in self._rows:
                return self._rows[key]
        data = self.prepared(country)
        if data is None:
            return None
        rows = column_rows(data, split, task)
        with self._lock:
            self._rows[key] = rows
        return rows

    def _rows_of(self, country: Country) -> int | None:
        data = self.prepared(country)
        return None if data is None else data.n_rows

    # ------------------------------------------------------------------ boards

    def fresh(self, key: tuple[Any, ...]) -> Any | None:
        """A cached value when the DB was asked for changes less than
        `leaderboard_check_seconds` ago; None means "go through `_cached`"."""
        with self._lock:
            if time.monotonic() - self._checked_at < self.settings.leaderboard_check_seconds:
                return self._outputs.get(key)
        return None

    def _check(self, session: Session) -> tuple[Any, ...]:
        token = repository.version_token(session)
        with self._lock:
            if token != self._token:
                self._token = token
                self._outputs.clear()
            self._checked_at = time.monotonic()
        return token

    def _cached(self, session: Session, key: tuple[Any, ...],
                make: Callable[[], tuple[T, bool]]) -> T:
        """`make()` returns (value, cacheable); values are kept while the token holds.

        One build at a time: while one request rebuilds after a change, the others get the
        previous value at once (stale while revalidating) rather than waiting or rebuilding.
        """
        self._served_stale.value = False
        try:
            token = self._check(session)
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            with self._lock:
                copy = self._outputs.get(key, self._stale.get(key))
            if copy is None:
                raise  # nothing to serve: the 503 of app.errors
            log.warning("the leaderboard's change check cannot reach the database (%s): "
                        "serving the cached copy", type(exc).__name__)
            self._served_stale.value = True
            return copy  # type: ignore[no-any-return]
        with self._lock:
            if key in self._outputs:
                return self._outputs[key]  # type: ignore[no-any-return]
        if not self._build_lock.acquire(blocking=False):
            with self._lock:
                stale = self._stale.get(key)
            if stale is not None:
                return stale  # type: ignore[no-any-return]
            self._build_lock.acquire()
        try:
            with self._lock:
                if self._token == token and key in self._outputs:
                    return self._outputs[key]  # type: ignore[no-any-return]
            value, cacheable = make()
            with self._lock:
                self._stale[key] = value
                if cacheable and self._token == token:
                    self._outputs[key] = value
        finally:
            self._build_lock.release()
        return value

    def served_stale(self) -> bool:
        """Whether this thread's last board came from the cache with the database unreachable."""
        return bool(getattr(self._served_stale, "value", False))

    def board(self, session: Session, country: Country | None, ranking: Ranking,
              audience: Audience = "public") -> Board:
        return self._cached(session, ("board", country, ranking, audience),
                            lambda: self._build(session, country, ranking, audience))

    @staticmethod
    def render_key(kind: str, country: Country | None, ranking: Ranking,
                   audience: Audience = "public") -> tuple[Any, ...]:
        return ("render", kind, country, ranking, audience)

    def rendered(self, session: Session, kind: str, country: Country | None, ranking: Ranking,
                 render: Callable[[Board], str | bytes],
                 audience: Audience = "public") -> Encoded:
        """A rendering of the board (JSON, CSV, HTML), encoded once, cached like the board."""

        def make() -> tuple[Encoded, bool]:
            # Cached even while groups are pending: their completion clears the cache.
            board = self._build_board(session, country, ranking, audience)
            return Encoded.of(render(board)), True

        return self._cached(session, self.render_key(kind, country, ranking, audience), make)

    def _build_board(self, session: Session, country: Country | None,
                     ranking: Ranking, audience: Audience = "public") -> Board:
        key = ("board", country, ranking, audience)
        with self._lock:
            cached = self._outputs.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        board, _ = self._build(session, country, ranking, audience)
        with self._lock:
            self._outputs[key] = board
        return board

    def _build(self, session: Session, country: Country | None,
               ranking: Ranking, audience: Audience = "public") -> tuple[Board, bool]:
        now = self.now()
        schedule = phases_store.load(session)
        ensure_locked(session, schedule, now)
        revealed = challenge.is_revealed(session)
        split = challenge.board_split(revealed)
        entries = repository.visible_entries(session, split)
        participant = audience == "public"
        if participant and schedule.ladder_active(now):
            # A figure the ladder withheld is not on the participants' board.
            ladder.ensure_decisions(session, self.settings, schedule)
            withheld = ladder.withheld_ids(session)
            entries = [e for e in entries if e.submission_id not in withheld]
        if schedule.end is not None:
            entries = [replace(e, post_challenge=schedule.is_post_challenge(e.submitted_at))
                       for e in entries]
        members = self._column_members(entries, columns_for(country))
        for column_country in {c for c, _task in members}:
            # A test set prepared again drops the groups computed on the old one.
            self.prepared(column_country)
        groups, state = self.groups.groups(split, members, self._loader(session, members),
                                           self._rows_of)
        board = build_board(entries, split=split, revealed=revealed, country=country,
                            ranking=ranking, groups=groups, groups_state=state,
                            reported=all_reported_rows(), generated_at=now)
        if participant and schedule.rounds_for_participants(now):
            board.digits = PARTICIPANT_DIGITS
        return board, state != "pending"

    @staticmethod
    def _column_members(entries: Sequence[Entry],
                        columns: Sequence[Column]) -> dict[Column, list[int]]:
        """The submissions shown in each column (each row's latest per country) with an AUC."""
        wanted = set(columns)
        members: dict[Column, list[int]] = {c: [] for c in columns}
        for per_country in latest_per_row(entries).values():
            for cc, entry in per_country.items():
                for task, result in entry.results.items():
                    if (cc, task) in wanted and result.auc is not None:
                        members[(cc, task)].append(entry.submission_id)
        # Submission ids grow with time: earliest first breaks exact AUC ties in its favour.
        return {c: sorted(m) for c, m in members.items()}

    def _loader(self, session: Session, members: dict[Column, list[int]]
                ) -> Callable[[Split, Country, Task, Sequence[int]], ColumnData | None]:
        ids = sorted({sid for m in members.values() for sid in m})
        # Read now: the loader may run in the background after this session is gone.
        refs = repository.prediction_refs(session, ids) if ids else {}

        def load(split: Split, country: Country, task: Task,
                 ordered: Sequence[int]) -> ColumnData | None:
            if any(not refs.get(sid) for sid in ordered):
                return None
            rows = self._column_rows(country, split, task)
            if rows is None:
                raise PreparedDataError(f"no prepared test set for {country}")
            scores: dict[int, np.ndarray] = {}
            for sid in ordered:
                reference = Submission(id=sid, predictions_sha256=refs[sid])
                predictions = load_predictions(self.settings, reference)
                if predictions is None:
                    return None
                scores[sid] = np.asarray(getattr(predictions, task), dtype=np.float64)[rows.index]
            return ColumnData(labels=rows.labels, scores=scores)

        return load

    # ------------------------------------------------------------------ submissions

    def roc_curves(self, session: Session, submission_id: int,
                   split: Split) -> dict[Task, list[tuple[float, float]]] | None:
        """ROC points per task of a submission on `split`; None without stored predictions."""
        found = repository.submissions_by_id(session, [submission_id]).get(submission_id)
        if found is None or not found.predictions_sha256:
            return None
        key = (submission_id, split, found.predictions_sha256)
        with self._lock:
            if key in self._roc:
                self._roc.move_to_end(key)
                return self._roc[key]
        predictions = load_predictions(self.settings, found)
        if predictions is None:
            return None
        country = parse_country(found.country)
        curves: dict[Task, list[tuple[float, float]]] = {}
        for task in TASKS:
            rows = self._column_rows(country, split, task)
            if rows is None:
                return None
            scores = np.asarray(getattr(predictions, task), dtype=np.float64)[rows.index]
            curves[task] = roc_quantile_points(rows.labels, scores)
        with self._lock:
            self._roc[key] = curves
            while len(self._roc) > ROC_CACHE_SIZE:
                self._roc.popitem(last=False)
        return curves

    def _groups_changed(self) -> None:
        # Boards made while groups were pending go; the stale copies keep serving meanwhile.
        with self._lock:
            self._token = None
            self._checked_at = float("-inf")
            self._outputs.clear()

    def invalidate(self) -> None:
        """Forget cached boards (organiser actions call this; the token would catch it too)."""
        with self._lock:
            self._token = None
            self._checked_at = float("-inf")
            self._outputs.clear()


def score_history_plots(by_method: Mapping[str, Sequence[HistoryPoint]]) -> dict[str, str]:
    """One AUC-over-time plot per method, for a team's own page (method → SVG)."""
    # The figure's caption carries the full name; the plot's own title is kept short enough
    # to fit its width.
    return {method: history_svg(points, title=method if len(method) <= 52
                                else method[:51] + "…")
            for method, points in sorted(by_method.items())}
