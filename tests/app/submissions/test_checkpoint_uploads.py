"""Checkpoint submissions (issue #4) through the API: a checkpoint alone is scored by running
it, with sklearn's AUCs on the model's outputs. Verification and hostile checkpoints are in
tests/app/test_checkpoint_submissions.py. Runs real sandboxed children, so SQLite only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class TwoHeads(torch.nn.Module):
    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        x = (numerical[:, :4].sum(dim=1) * 0.1
             + torch.remainder(categorical[:, 0], 7).float() * 0.05)
        ctr = torch.sigmoid(x)
        cvr = torch.sigmoid(numerical[:, 5] * 0.3 - 1.0)
        return torch.stack([ctr, cvr], dim=1)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(TwoHeads().eval()), str(path))
    return path


def model_outputs(prepared: Any) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        out = TwoHeads()(torch.from_numpy(np.array(prepared.categorical, dtype=np.int64)),
                         torch.from_numpy(np.array(prepared.numerical, dtype=np.float32)))
    return out[:, 0].double().numpy(), out[:, 1].double().numpy()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: Any, token: str, files: dict[str, Any], outputs: str | None = None) -> Any:
    data = {"country": "NL", "method": "ckpt"}
    if outputs:
        data["outputs"] = outputs
    return client.post("/api/v1/submissions", headers=bearer(token), files=files, data=data)


def file_of(ctr: np.ndarray, cvr: np.ndarray) -> bytes:
    # repr of a Python float round-trips exactly: the server reads the very same values.
    lines = ["row_id,ctr,cvr"] + [f"{i},{float(a)!r},{float(b)!r}"
                                  for i, (a, b) in enumerate(zip(ctr, cvr, strict=True))]
    return ("\n".join(lines) + "\n").encode()


def test_checkpoint_alone_is_scored_by_running_it(client: Any, make_team: Any, archive: Path,
                                                  prepared: Any) -> None:
    _, token = make_team("alpha")
    response = post(client, token, {"checkpoint": ("model.pt", archive.read_bytes())})
    assert response.status_code == 202, response.text
    data = client.get(f"/api/v1/submissions/{response.json()['id']}",
                      headers=bearer(token)).json()
    assert data["state"] == "scored", data["reason"]
    assert (data["has_checkpoint"], data["has_file"], data["outputs"]) == (True, False,
                                                                           "ctr,cvr")
    ctr, _ = model_outputs(prepared)
    public = np.asarray(prepared.public, dtype=bool)
    click = np.asarray(prepared.click).astype(bool)
    assert data["scores"]["public"]["ctr"]["auc"] == pytest.approx(
        roc_auc_score(click[public], ctr[public]), abs=1e-9)


def test_archive_that_is_not_a_zip_is_refused_with_422(client: Any, make_team: Any) -> None:
    _, token = make_team("alpha")
    response = post(client, token, {"checkpoint": ("model.pt", b"not a zip at all")})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_checkpoint"


def test_unknown_outputs_declaration_is_422(client: Any, make_team: Any,
                                            archive: Path) -> None:
    _, token = make_team("alpha")
    response = post(client, token, {"checkpoint": ("m.pt", archive.read_bytes())},
                    outputs="cvr,ctr")
    assert response.status_code == 422
    assert "outputs" in response.json()["detail"]
