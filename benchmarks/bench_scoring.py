"""Scoring engine vs the naive path, in the same run, on the same file.

    .venv/bin/python benchmarks/bench_scoring.py [--rows 8000000] [--repeat 3]

Writes (under benchmarks/out/bench_scoring/) a prepared folder of synthetic labels (~2 % clicks,
~3 % conversions among clicks, 30 % public) and a prediction file `row_id,ctr,cvr` with `%.6f`
values, rows in row_id order. Then times, each in a fresh subprocess (so that its peak RSS is
its own):

(a) this engine: `parse_prediction_file` (parse + validate + align) and `auc_with_ci` for CTR,
    CVR (clicked rows) and CTCVR on the full set; also the complete `score_predictions`
    (three splits × three tasks, intervals and log-loss), reported separately;
(b) the naive path: `pandas.read_csv` + `sklearn.metrics.roc_auc_score` × 3 on the same file.

Prints both times (best of --repeat), the ratio and the peak RSS of each. With --general, also
times parsing alone with the fixed-width reader and with the general reader.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "bench_scoring"


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# ----------------------------------------------------------------------------------- data


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return out


def _fixed6(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """`%.6f` of values in [0, 1] as an (n, 8) byte matrix."""
    micro = np.rint(values * 1e6).astype(np.int64)
    out = np.empty((values.size, 8), dtype=np.uint8)
    out[:, 0] = 48 + micro // 1_000_000
    out[:, 1] = ord(".")
    for k in range(6):
        out[:, 2 + k] = 48 + (micro // 10 ** (5 - k)) % 10
    return out


def write_prediction_file(path: Path, ctr: npt.NDArray[np.float64],
                          cvr: npt.NDArray[np.float64]) -> None:
    """Vectorised `%d,%.6f,%.6f` lines: ids of one digit count form one contiguous block."""
    n = ctr.size
    with open(path, "wb") as file:
        file.write(b"row_id,ctr,cvr\n")
        digits = 1
        while 10 ** (digits - 1) <= max(n - 1, 0) or digits == 1:
            lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), min(10**digits, n)
            if lo >= hi:
                break
            ids = np.arange(lo, hi, dtype=np.int64)
            lines = np.empty((ids.size, digits + 19), dtype=np.uint8)
            for k in range(digits):
                lines[:, k] = 48 + (ids // 10 ** (digits - 1 - k)) % 10
            lines[:, digits] = ord(",")
            lines[:, digits + 1 : digits + 9] = _fixed6(ctr[lo:hi])
            lines[:, digits + 9] = ord(",")
            lines[:, digits + 10 : digits + 18] = _fixed6(cvr[lo:hi])
            lines[:, digits + 18] = ord("\n")
            file.write(lines.tobytes())
            digits += 1


def write_prepared(folder: Path, click: npt.NDArray[np.bool_], conversion: npt.NDArray[np.bool_],
                   public: npt.NDArray[np.bool_]) -> None:
    from evaluator.data.prepared import FORMAT_VERSION, PreparedMeta

    n = click.size
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "click.npy", click.astype(np.int8))
    np.save(folder / "conversion.npy", conversion.astype(np.int8))
    np.save(folder / "public.npy", public)
    np.save(folder / "search_id.npy", np.arange(n, dtype=np.int64))
    # Features are not scored: left as sparse (never written) files of the right shape.
    np.lib.format.open_memmap(folder / "categorical.npy", "w+", np.int32, (n, 16)).flush()
    np.lib.format.open_memmap(folder / "numerical.npy", "w+", np.float32, (n, 63)).flush()
    meta = PreparedMeta(FORMAT_VERSION, n, int(public.sum()), "synthetic", "0" * 64, "bench",
                        [0] * 16, int(click.sum()), int(conversion.sum()))
    (folder / "meta.json").write_text(meta.to_json())


def make_data(rows: int, seed: int) -> tuple[Path, Path]:
    folder, file = OUT / f"prepared_{rows}_{seed}", OUT / f"pred_{rows}_{seed}.csv"
    if (folder / "meta.json").is_file() and file.is_file():
        return folder, file
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z_click = rng.normal(size=rows)
    click = rng.random(rows) < _sigmoid(-4.6 + 1.2 * z_click)
    z_buy = rng.normal(size=rows)
    conversion = click & (rng.random(rows) < _sigmoid(-4.0 + 1.2 * z_buy))
    public = rng.random(rows) < 0.3
    ctr = _sigmoid(-4.6 + 1.2 * (z_click + rng.normal(0, 0.8, rows)))
    cvr = _sigmoid(-4.0 + 1.2 * (z_buy + rng.normal(0, 0.8, rows)))
    write_prepared(folder, click, conversion, public)
    write_prediction_file(file, ctr, cvr)
    return folder, file


# -------------------------------------------------------------------------------- children


def child_engine(folder: Path, file: Path) -> dict[str, object]:
    from evaluator.data.prepared import PreparedData
    from evaluator.metrics import auc_with_ci
    from evaluator.predictions import parse_prediction_file
    from evaluator.scoring import score_predictions

    start = time.perf_counter()
    data = PreparedData.open(folder)
    predictions = parse_prediction_file(file, data.n_rows)
    parsed = time.perf_counter()
    click = np.asarray(data.click).astype(bool)
    conversion = np.asarray(data.conversion).astype(bool)
    aucs = {
        "ctr": auc_with_ci(click, predictions.ctr).auc,
        "cvr": auc_with_ci(conversion[click], predictions.cvr[click]).auc,
        "ctcvr": auc_with_ci(conversion, predictions.ctcvr).auc,
    }
    done = time.perf_counter()
    report = score_predictions(data, predictions)
    scored = time.perf_counter()
    return {
        "parse_s": parsed - start,
        "seconds": done - start,
        "score_predictions_s": scored - done,
        "aucs": aucs,
        "report": report.to_json(),
        "peak_rss_mib": _peak_rss_mib(),
    }


def child_parse(folder: Path, file: Path) -> dict[str, object]:
    from evaluator.data.prepared import PreparedData
    from evaluator.predictions import parse_prediction_file

    start = time.perf_counter()
    parse_prediction_file(file, PreparedData.open(folder).n_rows)
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": _peak_rss_mib()}


def child_naive(folder: Path, file: Path) -> dict[str, object]:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    click = np.load(folder / "click.npy").astype(bool)
    conversion = np.load(folder / "conversion.npy").astype(bool)
    start = time.perf_counter()
    frame = pd.read_csv(file)
    ctr, cvr = frame["ctr"].to_numpy(), frame["cvr"].to_numpy()
    aucs = {
        "ctr": float(roc_auc_score(click, ctr)),
        "cvr": float(roc_auc_score(conversion[click], cvr[click])),
        "ctcvr": float(roc_auc_score(conversion, ctr * cvr)),
    }
    return {"seconds": time.perf_counter() - start, "aucs": aucs,
            "peak_rss_mib": _peak_rss_mib()}


def _run_child(kind: str, folder: Path, file: Path) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--prepared", str(folder), "--file", str(file)],
        check=True, capture_output=True, text=True, env=env,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--general", action="store_true",
                        help="also time parsing alone with the general reader (the same text "
                             "without its final line end, which the fixed-width reader needs)")
    parser.add_argument("--child", choices=["engine", "naive", "parse"])
    parser.add_argument("--prepared", type=Path)
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        run = {"engine": child_engine, "naive": child_naive, "parse": child_parse}[args.child]
        print(json.dumps(run(args.prepared, args.file)))
        return

    started = time.perf_counter()
    folder, file = make_data(args.rows, args.seed)
    click = np.load(folder / "click.npy")
    conversion = np.load(folder / "conversion.npy")
    print(f"data: {file} ({file.stat().st_size / 2**20:.0f} MiB, {args.rows} rows; clicks "
          f"{click.mean():.2%}, CVR among clicks {conversion[click == 1].mean():.2%}) ready in "
          f"{time.perf_counter() - started:.1f} s")
    engine_runs, naive_runs = [], []
    for _ in range(args.repeat):
        engine_runs.append(_run_child("engine", folder, file))
        naive_runs.append(_run_child("naive", folder, file))
    engine = min(engine_runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
    naive = min(naive_runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
    assert isinstance(engine["aucs"], dict) and isinstance(naive["aucs"], dict)
    for task, value in naive["aucs"].items():
        if abs(float(engine["aucs"][task]) - float(value)) > 1e-12:
            raise SystemExit(f"AUC mismatch on {task}: engine {engine['aucs'][task]} vs {value}")
    e_s, n_s = float(engine["seconds"]), float(naive["seconds"])  # type: ignore[arg-type]
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    print(f"(a) engine  parse+validate+3 AUCs with CI: {e_s:.3f} s "
          f"(parse {float(engine['parse_s']):.3f} s), peak RSS "  # type: ignore[arg-type]
          f"{float(engine['peak_rss_mib']):.0f} MiB; all runs: "  # type: ignore[arg-type]
          + ", ".join(f"{float(r['seconds']):.3f}" for r in engine_runs))  # type: ignore[arg-type]
    print(f"    score_predictions (3 splits × 3 tasks, CIs, log-loss) after parsing: "
          f"{float(engine['score_predictions_s']):.3f} s")  # type: ignore[arg-type]
    print(f"(b) naive   pandas.read_csv + roc_auc_score x3:  {n_s:.3f} s, peak RSS "
          f"{float(naive['peak_rss_mib']):.0f} MiB; all runs: "  # type: ignore[arg-type]
          + ", ".join(f"{float(r['seconds']):.3f}" for r in naive_runs))  # type: ignore[arg-type]
    print(f"ratio (b)/(a): {n_s / e_s:.1f}x; AUCs identical to 1e-12: {engine['aucs']}")
    report = engine["report"]
    assert isinstance(report, dict)
    for split, tasks in report["splits"].items():
        cells = ", ".join(
            f"{task} {s['auc']:.4f} [{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
            for task, s in tasks.items()
        )
        print(f"    {split:8s} {cells}")
    general_runs = []
    if args.general:
        general = file.with_name(file.stem + "_general.csv")
        if not general.is_file():
            with open(file, "rb") as source, open(general, "wb") as target:
                target.write(source.read()[:-1])
        fixed_runs = [_run_child("parse", folder, file) for _ in range(args.repeat)]
        general_runs = [_run_child("parse", folder, general) for _ in range(args.repeat)]
        for name, runs in (("fixed-width reader", fixed_runs), ("general reader", general_runs)):
            best = min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
            print(f"parse only, {name}: {float(best['seconds']):.3f} s, peak RSS "  # type: ignore[arg-type]
                  f"{float(best['peak_rss_mib']):.0f} MiB; all runs: "  # type: ignore[arg-type]
                  + ", ".join(f"{float(r['seconds']):.3f}" for r in runs))  # type: ignore[arg-type]
    (OUT / "result.json").write_text(json.dumps(
        {"rows": args.rows, "engine": engine_runs, "naive": naive_runs,
         "general_parse": general_runs}, indent=2))


if __name__ == "__main__":
    main()
