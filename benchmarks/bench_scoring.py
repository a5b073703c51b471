"""Scoring engine vs pandas + sklearn vs the physical floor, per prediction-file shape, in one run.

    .venv/bin/python benchmarks/bench_scoring.py --shapes all [--rows 8000000] [--repeat 3]

Writes (under benchmarks/out/bench_scoring/, kept between runs) a prepared folder of synthetic
labels (~2 % clicks, ~3 % conversions among clicks, 30 % public) and, per shape, one prediction
file `row_id,ctr,cvr` of the same probabilities:

| shape | file |
|---|---|
| `fixed6` | `%.6f`, rows in row_id order |
| `pandas` | pandas' default `to_csv` (shortest round-trip floats), rows in order |
| `shuffled` | the same, rows shuffled |
| `g17` | `%.17g`, rows in order |
| `exp` | `%.18e` (numpy.savetxt's default: every value with an exponent), rows in order |
| `gzip` | `shuffled`, gzip-compressed (level 6) |
| `parquet` | `shuffled` as Parquet (pandas' `to_parquet`, snappy) |

Then times, each in a fresh subprocess (so that its peak RSS is its own), best of --repeat:

(a) the engine: `parse_prediction_file` (parse, every check, alignment by row_id) and
    `auc_with_ci` (AUC with its DeLong interval) for CTR, CVR (clicked rows) and CTCVR; its
    parse alone is shown too, and, apart, the time `score_predictions` then takes for the
    whole report of `leaderboard score` (three splits × three tasks, intervals, log-loss);
(b) pandas + sklearn: `pandas.read_csv` (or `read_parquet`), a sort by row_id and three
    `sklearn.metrics.roc_auc_score` (CTR, CVR on clicked rows, CTCVR), no checks at all;
(c) the physical floor: reading the file's bytes (as stored: compressed for gzip) into memory
    and one `np.sort` of each class's CTR scores.

Prints a markdown table: seconds, (b)/(a), (a)/(c), the CPU seconds (user + system, all
threads) of (a) and (b), and the engine's peak RSS. The AUCs of (a) and (b) must agree to
1e-12 or the run fails.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "bench_scoring"
SHAPES = ("fixed6", "pandas", "shuffled", "g17", "exp", "gzip", "parquet")
FILE_NAMES = {
    "fixed6": "fixed6.csv", "pandas": "pandas.csv", "shuffled": "shuffled.csv",
    "g17": "g17.csv", "exp": "exp.csv", "gzip": "shuffled.csv.gz", "parquet": "shuffled.parquet",
}


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


def write_fixed6(path: Path, ctr: npt.NDArray[np.float64], cvr: npt.NDArray[np.float64]) -> None:
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
    """The prepared folder and the file of the true probabilities (`values.npz`)."""
    base = OUT / f"{rows}_{seed}"
    folder, values = base / "prepared", base / "values.npz"
    if (folder / "meta.json").is_file() and values.is_file():
        return folder, values
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z_click = rng.normal(size=rows)
    click = rng.random(rows) < _sigmoid(-4.6 + 1.2 * z_click)
    z_buy = rng.normal(size=rows)
    conversion = click & (rng.random(rows) < _sigmoid(-4.0 + 1.2 * z_buy))
    public = rng.random(rows) < 0.3
    ctr = _sigmoid(-4.6 + 1.2 * (z_click + rng.normal(0, 0.8, rows)))
    cvr = _sigmoid(-4.0 + 1.2 * (z_buy + rng.normal(0, 0.8, rows)))
    write_prepared(folder, click, conversion, public)
    np.savez(values, ctr=ctr, cvr=cvr, order=rng.permutation(rows))
    return folder, values


def make_file(shape: str, values_path: Path) -> Path:
    """The prediction file of `shape` (written once, then kept)."""
    import pandas as pd

    path = values_path.parent / FILE_NAMES[shape]
    if path.is_file():
        return path
    values = np.load(values_path)
    ctr, cvr, order = values["ctr"], values["cvr"], values["order"]
    frame = pd.DataFrame({"row_id": np.arange(ctr.size), "ctr": ctr, "cvr": cvr})
    shuffled = frame.iloc[order]
    partial = path.with_name(path.name + ".partial")
    if shape == "fixed6":
        write_fixed6(partial, ctr, cvr)
    elif shape == "pandas":
        frame.to_csv(partial, index=False)
    elif shape == "shuffled":
        shuffled.to_csv(partial, index=False)
    elif shape == "g17":
        frame.to_csv(partial, index=False, float_format="%.17g")
    elif shape == "exp":
        frame.to_csv(partial, index=False, float_format="%.18e")
    elif shape == "gzip":
        source = make_file("shuffled", values_path)
        with open(source, "rb") as src, gzip.open(partial, "wb", compresslevel=6) as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
    elif shape == "parquet":
        shuffled.to_parquet(partial, index=False)
    else:
        raise ValueError(f"unknown shape {shape}")
    partial.rename(path)
    return path


# -------------------------------------------------------------------------------- children


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_engine(folder: Path, file: Path) -> dict[str, object]:
    # Imported before the clock starts, as pandas and sklearn are for (b): a server has them.
    import pyarrow.compute
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401

    from evaluator.data.prepared import PreparedData
    from evaluator.metrics import auc_with_ci
    from evaluator.predictions import parse_prediction_file
    from evaluator.scoring import score_predictions

    cpu = _cpu_s()
    start = time.perf_counter()
    data = PreparedData.open(folder)
    predictions = parse_prediction_file(file, data.n_rows)
    parsed = time.perf_counter()
    click = np.asarray(data.click, dtype=bool)
    conversion = np.asarray(data.conversion, dtype=bool)
    aucs = {
        "ctr": auc_with_ci(click, predictions.ctr).auc,
        "cvr": auc_with_ci(conversion[click], predictions.cvr[click]).auc,
        "ctcvr": auc_with_ci(conversion, predictions.ctcvr).auc,
    }
    done = time.perf_counter()
    cpu = _cpu_s() - cpu
    report = score_predictions(data, predictions)
    scored = time.perf_counter()
    return {
        "seconds": done - start,
        "parse_s": parsed - start,
        "cpu_s": cpu,
        "score_predictions_s": scored - done,
        "aucs": aucs,
        "report": report.to_json(),
        "peak_rss_mib": _peak_rss_mib(),
    }


def child_naive(folder: Path, file: Path) -> dict[str, object]:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    click = np.load(folder / "click.npy").astype(bool)
    conversion = np.load(folder / "conversion.npy").astype(bool)
    cpu = _cpu_s()
    start = time.perf_counter()
    frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    frame = frame.sort_values("row_id")
    ctr, cvr = frame["ctr"].to_numpy(), frame["cvr"].to_numpy()
    aucs = {
        "ctr": float(roc_auc_score(click, ctr)),
        "cvr": float(roc_auc_score(conversion[click], cvr[click])),
        "ctcvr": float(roc_auc_score(conversion, ctr * cvr)),
    }
    return {"seconds": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "aucs": aucs,
            "peak_rss_mib": _peak_rss_mib()}


def child_physical(folder: Path, file: Path, values: Path) -> dict[str, object]:
    click = np.load(folder / "click.npy").astype(bool)
    ctr = np.load(values)["ctr"]
    pos, neg = ctr[click], ctr[~click]
    start = time.perf_counter()
    # numpy asks for huge pages for an array this size: the fastest plain read there is.
    data = np.empty(file.stat().st_size, dtype=np.uint8)
    with open(file, "rb", buffering=0) as source:
        got = source.readinto(data.data)
    read = time.perf_counter()
    np.sort(pos)
    np.sort(neg)
    done = time.perf_counter()
    assert got == data.size
    return {"seconds": done - start, "read_s": read - start, "peak_rss_mib": _peak_rss_mib()}


def _run_child(kind: str, folder: Path, file: Path, values: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--prepared", str(folder), "--file",
         str(file), "--values", str(values)],
        check=True, capture_output=True, text=True, env=env,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return min(runs, key=lambda r: float(r["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="all",
                        help=f"comma-separated, from {','.join(SHAPES)}; or all")
    parser.add_argument("--child", choices=["engine", "naive", "physical"])
    parser.add_argument("--prepared", type=Path)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--values", type=Path)
    args = parser.parse_args()
    if args.child:
        if args.child == "physical":
            print(json.dumps(child_physical(args.prepared, args.file, args.values)))
        else:
            run = {"engine": child_engine, "naive": child_naive}[args.child]
            print(json.dumps(run(args.prepared, args.file)))
        return
    shapes = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise SystemExit(f"unknown shapes {', '.join(unknown)}; choose from {', '.join(SHAPES)}")

    started = time.perf_counter()
    folder, values = make_data(args.rows, args.seed)
    files = {shape: make_file(shape, values) for shape in shapes}
    click = np.load(folder / "click.npy")
    conversion = np.load(folder / "conversion.npy")
    print(f"data: {args.rows} rows (clicks {click.mean():.2%}, CVR among clicks "
          f"{conversion[click == 1].mean():.2%}), files ready in "
          f"{time.perf_counter() - started:.0f} s")
    results: dict[str, dict[str, dict[str, float]]] = {}
    raw: dict[str, dict[str, list[dict[str, float]]]] = {}
    for shape in shapes:
        runs: dict[str, list[dict[str, float]]] = {"engine": [], "naive": [], "physical": []}
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(_run_child(kind, folder, files[shape], values))
        raw[shape] = runs
        results[shape] = {kind: _best(r) for kind, r in runs.items()}
        engine, naive = results[shape]["engine"], results[shape]["naive"]
        engine_aucs = engine["aucs"]
        naive_aucs = naive["aucs"]
        assert isinstance(engine_aucs, dict) and isinstance(naive_aucs, dict)
        for task, value in naive_aucs.items():
            if abs(float(engine_aucs[task]) - float(value)) > 1e-12:
                raise SystemExit(f"{shape}: AUC mismatch on {task}: engine "
                                 f"{engine_aucs[task]} vs sklearn {value}")
        print(f"{shape}: engine {engine['seconds']:.3f} s, pandas+sklearn "
              f"{naive['seconds']:.3f} s, physical {results[shape]['physical']['seconds']:.3f} s",
              flush=True)

    print()
    print(f"{args.rows:,} rows; best of {args.repeat}; {platform.machine()}, "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; AUCs of (a) and (b) "
          "agree to 1e-12")
    print()
    print("| shape | file MiB | engine s (parse s) | pandas + sklearn s | ratio | physical s | "
          "engine / physical | CPU s engine / pandas | full report after parse s | "
          "engine peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        e, n, p = (results[shape][k] for k in ("engine", "naive", "physical"))
        mib = files[shape].stat().st_size / 2**20
        print(f"| {shape} | {mib:.0f} | {e['seconds']:.3f} ({e['parse_s']:.3f}) | "
              f"{n['seconds']:.2f} | {n['seconds'] / e['seconds']:.1f}× | {p['seconds']:.3f} | "
              f"{e['seconds'] / p['seconds']:.1f}× | {e['cpu_s']:.2f} / {n['cpu_s']:.2f} | "
              f"{e['score_predictions_s']:.3f} | {e['peak_rss_mib']:.0f} |")
    (OUT / "result.json").write_text(json.dumps({"rows": args.rows, "runs": raw}, indent=2))


if __name__ == "__main__":
    main()
