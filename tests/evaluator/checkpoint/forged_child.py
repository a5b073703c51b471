"""A compromised child: ignores its job and reports success with the predictions it likes.

Stands in for participant code that escaped TorchScript inside the sandbox; the parent must not
take what it sends back on trust. The archive's file name ("nan.pt", "short.pt", "long.pt")
picks the forgery.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    job = json.loads(sys.stdin.buffer.read())
    result = os.fdopen(int(job["result_fd"]), "wb", buffering=0)
    n_rows, k = int(job["n_rows"]), len(job["outputs"])
    values = np.full((k, n_rows), 0.5)
    forge = Path(job["archive"]).stem
    if forge == "nan":
        values[0, 0] = np.nan
    elif forge == "short":
        values = values[:, :-1]
    header = {
        "status": "ok",
        "n_rows": n_rows,
        "torch_version": ["not", "a", "string"],
        "device": "x" * 50_000 if forge == "long" else "cpu",
        "inference_s": "soon",
        "sandbox": "none",
    }
    result.write(json.dumps(header).encode() + b"\n" + values.astype("<f8").tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
