"""Checkpoint submissions over HTTP, through the real worker and the real sandbox.

The shared `client` runs the queue in immediate mode, so a POST returns once its job (here a
sandboxed checkpoint run of a few seconds) has finished. The checkpoint path is the same on both
databases, so these tests run on SQLite only; the service's own tests cover PostgreSQL.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch
from torch import nn

from evaluator.data.prepared import PreparedData
from evaluator.schema import N_CATEGORICAL, N_NUMERICAL

pytestmark = [
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

API = "/api/v1"


class SmallMMoE(nn.Module):
    """An honest MMoE-like model: shared embedding with per-field offsets, numerical features
    as a 17th field, two experts, per-task softmax gates, sigmoid towers."""

    if TYPE_CHECKING:
        # The registered buffer, declared for mypy only: TorchScript reads class annotations
        # at runtime and cannot resolve the string `from __future__ import annotations` makes.
        offsets: torch.Tensor

    def __init__(self, vocab: int = 512, dim: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.vocab = vocab
        self.embedding = nn.Embedding(vocab * N_CATEGORICAL, dim)
        self.numerical = nn.Linear(N_NUMERICAL, dim)
        width = (N_CATEGORICAL + 1) * dim
        self.experts = nn.ModuleList([nn.Linear(width, hidden) for _ in range(2)])
        self.gates = nn.ModuleList([nn.Linear(width, 2) for _ in range(2)])
        self.towers = nn.ModuleList([nn.Linear(hidden, 1) for _ in range(2)])
        self.register_buffer("offsets", torch.arange(N_CATEGORICAL) * vocab)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> list[torch.Tensor]:
        fields = categorical.clamp(0, self.vocab - 1) + self.offsets
        x = torch.cat([self.embedding(fields).flatten(1), self.numerical(numerical)], dim=1)
        experts = torch.stack([torch.relu(expert(x)) for expert in self.experts], dim=1)
        out: list[torch.Tensor] = []
        for gate, tower in zip(self.gates, self.towers, strict=True):
            mixed = torch.bmm(torch.softmax(gate(x), dim=1).unsqueeze(1), experts).squeeze(1)
            out.append(torch.sigmoid(tower(mixed)).squeeze(1))
        return out


class NaNOutput(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2]) * float("nan")


class HugeAllocation(nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        big = torch.ones(64 * 1024 * 1024 * 1024)  # 256 GiB of float32
        return torch.sigmoid(numerical[:, :2]) + big[0] * 0.0


class WritesOnLoad(nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.target = state[0]
        self.training = state[1]
        torch.save(torch.zeros(1), self.target)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(numerical[:, :2])


def _archive(module: nn.Module) -> bytes:
    module.eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def _own_predictions(archive: bytes, data: PreparedData) -> bytes:
    """The model's outputs computed here, written as the prediction file it would upload."""
    # torch ships torch.jit.load without annotations.
    model = torch.jit.load(io.BytesIO(archive))  # type: ignore[no-untyped-call]
    with torch.inference_mode():
        ctr, cvr = model(
            torch.from_numpy(np.array(data.categorical)).long(),
            torch.from_numpy(np.array(data.numerical)),
        )
    lines = ["row_id,ctr,cvr"]
    pairs = zip(ctr.tolist(), cvr.tolist(), strict=True)
    lines += [f"{i},{a!r},{b!r}" for i, (a, b) in enumerate(pairs)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def honest() -> bytes:
    torch.manual_seed(0)
    return _archive(SmallMMoE())


def _submit(client: Any, token: str, **parts: bytes | str) -> Any:
    files = {
        name: (f"{name}.bin", value, "application/octet-stream")
        for name, value in parts.items()
        if name in ("file", "checkpoint")
    }
    data = {"country": "NL", "method": str(parts.get("method", "mmoe"))}
    if "outputs" in parts:
        data["outputs"] = str(parts["outputs"])
    return client.post(
        f"{API}/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data=data,
        files=files,
    )


def _get(client: Any, token: str, submission_id: int) -> dict[str, Any]:
    response = client.get(
        f"{API}/submissions/{submission_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _aucs(submission: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    return {
        (split, task): score["auc"]
        for split, tasks in submission["scores"].items()
        for task, score in tasks.items()
    }


def test_an_honest_checkpoint_scores_like_its_own_prediction_file(
    client: Any,
    make_team: Callable[..., tuple[Any, str]],
    prepared: PreparedData,
    honest: bytes,
) -> None:
    _, token = make_team("honest-team")
    by_file = _submit(client, token, file=_own_predictions(honest, prepared))
    by_checkpoint = _submit(client, token, checkpoint=honest, outputs="ctr,cvr")
    assert by_file.status_code == by_checkpoint.status_code == 202, by_checkpoint.text
    file_sub = _get(client, token, by_file.json()["id"])
    checkpoint_sub = _get(client, token, by_checkpoint.json()["id"])
    assert file_sub["state"] == checkpoint_sub["state"] == "scored", checkpoint_sub["reason"]
    assert checkpoint_sub["has_checkpoint"] and checkpoint_sub["outputs"] == "ctr,cvr"
    file_aucs, checkpoint_aucs = _aucs(file_sub), _aucs(checkpoint_sub)
    assert file_aucs.keys() == checkpoint_aucs.keys() and file_aucs
    for key, auc in file_aucs.items():
        other = checkpoint_aucs[key]
        assert (auc is None) == (other is None), key
        if auc is not None and other is not None:
            assert abs(auc - other) < 1e-9, key


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (NaNOutput,
         r"^bad output: output ctr is not a finite number at \d+ rows \(first row_id 0: nan\)"),
        (HugeAllocation, r"^memory limit: the model needed more than"),
    ],
    ids=["nan-output", "huge-allocation"],
)
def test_a_hostile_checkpoint_fails_with_its_reason_and_the_next_submission_scores(
    client: Any,
    make_team: Callable[..., tuple[Any, str]],
    honest: bytes,
    hostile: type[nn.Module],
    reason: str,
) -> None:
    _, token = make_team("hostile-team")
    failed = _submit(client, token, checkpoint=_archive(hostile()))
    assert failed.status_code == 202, failed.text
    body = _get(client, token, failed.json()["id"])
    assert body["state"] == "failed"
    assert body["scores"] == {}
    assert re.search(reason, body["reason"]), body["reason"]
    after = _submit(client, token, checkpoint=honest)
    assert _get(client, token, after.json()["id"])["state"] == "scored"


def test_a_checkpoint_writing_a_file_while_loading_is_refused_at_upload(
    client: Any, make_team: Callable[..., tuple[Any, str]], tmp_path: Path
) -> None:
    _, token = make_team("writer-team")
    target = tmp_path / "pwned"
    response = _submit(client, token, checkpoint=_archive(WritesOnLoad(str(target))))
    assert response.status_code == 422, response.text
    assert "calls torch.save" in str(response.json()["detail"])
    assert not target.exists()
    listed = client.get(f"{API}/submissions", headers={"Authorization": f"Bearer {token}"})
    assert listed.json() == []


def test_a_truncated_checkpoint_is_refused_at_upload(
    client: Any, make_team: Callable[..., tuple[Any, str]], honest: bytes
) -> None:
    _, token = make_team("truncated-team")
    response = _submit(client, token, checkpoint=honest[: len(honest) // 2])
    assert response.status_code == 422, response.text
    assert "not a valid zip archive" in str(response.json()["detail"])


def _verify(client: Any, organiser_token: str, submission_id: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {organiser_token}"}
    requested = client.post(f"{API}/submissions/{submission_id}/verify", headers=headers)
    assert requested.status_code == 202, requested.text
    listed = client.get(f"{API}/submissions/{submission_id}/verifications", headers=headers)
    assert listed.status_code == 200, listed.text
    latest: dict[str, Any] = listed.json()[0]
    return latest


def test_a_file_and_its_checkpoint_are_verified_with_the_comparison(
    client: Any,
    make_team: Callable[..., tuple[Any, str]],
    prepared: PreparedData,
    honest: bytes,
) -> None:
    _, token = make_team("verified-team")
    _, organiser = make_team("organisers", organiser=True)
    submitted = _submit(client, token, file=_own_predictions(honest, prepared), checkpoint=honest)
    assert submitted.status_code == 202, submitted.text
    assert _get(client, token, submitted.json()["id"])["state"] == "scored"
    verification = _verify(client, organiser, submitted.json()["id"])
    assert verification["state"] == "done", verification["reason"]
    assert verification["verified"] is True
    assert verification["tolerance"] == 1e-4
    assert verification["torch_version"] == torch.__version__
    assert verification["device"].startswith("cpu")
    assert verification["duration_s"] > 0
    results = verification["results"]
    assert set(results["rows"]) == {"ctr", "cvr"}, results
    for comparison in ("rows", "permuted"):
        for task, result in results[comparison].items():
            assert result["max_abs_diff"] <= 1e-4, (comparison, task)
            assert (result["rows_over"], result["within_tolerance"]) == (0, True)
    assert "every row" in results["certifies"]


def test_a_file_that_its_checkpoint_does_not_reproduce_is_not_verified(
    client: Any,
    make_team: Callable[..., tuple[Any, str]],
    make_predictions: Callable[..., tuple[bytes, dict[str, np.ndarray]]],
    honest: bytes,
) -> None:
    _, token = make_team("unverified-team")
    _, organiser = make_team("organisers", organiser=True)
    other_predictions, _ = make_predictions(seed=3)
    submitted = _submit(client, token, file=other_predictions, checkpoint=honest)
    assert _get(client, token, submitted.json()["id"])["state"] == "scored"
    verification = _verify(client, organiser, submitted.json()["id"])
    assert verification["state"] == "done", verification["reason"]
    assert verification["verified"] is False
    rows = verification["results"]["rows"]
    assert any(not r["within_tolerance"] and r["rows_over"] > 0 for r in rows.values())


class ReturnsCtrAndCtcvr(nn.Module):
    """Like the multi-task library's models: (pCTR, pCTCVR), the second never above the
    first."""

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> list[torch.Tensor]:
        ctr = torch.sigmoid(numerical[:, 0] - 2.0)
        return [ctr, ctr * torch.sigmoid(numerical[:, 1] - 3.0)]


def test_a_checkpoint_whose_outputs_contradict_their_declaration_is_warned(
    client: Any, make_team: Callable[..., tuple[Any, str]],
) -> None:
    _, token = make_team("mtl-team")
    archive = _archive(ReturnsCtrAndCtcvr())
    wrong = _submit(client, token, checkpoint=archive, outputs="ctr,cvr")
    right = _submit(client, token, checkpoint=archive, outputs="ctr,ctcvr")
    wrong_sub = _get(client, token, wrong.json()["id"])
    right_sub = _get(client, token, right.json()["id"])
    assert wrong_sub["state"] == right_sub["state"] == "scored", wrong_sub["reason"]
    assert wrong_sub["output_warning"] is not None
    assert "below the first (pCTR) on 100% of the rows" in wrong_sub["output_warning"]
    assert right_sub["output_warning"] is None
