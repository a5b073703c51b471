"""The content-addressed artifact store and the compact predictions store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from app.storage import ArtifactStore, read_predictions, save_predictions
from evaluator.predictions import Predictions


def test_bytes_are_stored_at_their_sha256(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put_bytes(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert store.path(sha) == tmp_path / sha[:2] / sha[2:]
    assert store.path(sha).read_bytes() == b"hello"


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.put_bytes(b"x") == store.put_bytes(b"x")
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_adopting_a_duplicate_removes_the_temp_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put_bytes(b"x")
    tmp = store.tmp_dir / "upload"
    tmp.write_bytes(b"x")
    store.adopt(tmp, sha)
    assert not tmp.exists()


def test_non_digest_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        ArtifactStore(tmp_path).path("../../etc/passwd")


def test_predictions_round_trip_as_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ctr, cvr = rng.random(100), rng.random(100)
    original = Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr)
    store = ArtifactStore(tmp_path)
    loaded = read_predictions(store, save_predictions(store, original))
    for name in ("ctr", "cvr", "ctcvr"):
        expected = getattr(original, name).astype(np.float32).astype(np.float64)
        assert np.array_equal(getattr(loaded, name), expected)
    assert loaded.columns == original.columns


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    import os
    import time

    store = ArtifactStore(tmp_path)
    old, fresh = store.tmp_dir / "old", store.tmp_dir / "fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    past = time.time() - 2 * 86400
    os.utime(old, (past, past))
    assert store.sweep_tmp() == 1
    assert not old.exists() and fresh.exists()
