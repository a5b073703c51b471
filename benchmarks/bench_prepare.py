"""Peak memory and time of `prepare` on a large synthetic test.csv, against the naive
`pd.read_csv(...).to_numpy()` on the same file, each in a fresh process.

    .venv/bin/python benchmarks/bench_prepare.py [--rows 2000000] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each child reports its own peak resident set and its wall time. VmHWM, not ru_maxrss: Linux
# carries ru_maxrss across exec, so a child would report the parent's peak.
CHILD = """
import json, resource, sys, time
from pathlib import Path
mode, csv, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
import numpy, pandas, pyarrow, pyarrow.csv
from evaluator.data.prepare import prepare_csv
start = time.perf_counter()
if mode == "prepare":
    prepare_csv(csv, out)
elif mode == "naive":
    array = pandas.read_csv(csv).to_numpy()
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) * 1024
print(json.dumps({"seconds": elapsed, "peak_rss": peak}))
"""


def measure(mode: str, csv: Path, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(csv), str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from evaluator.data.synth import write_synthetic

    work = Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=args.workdir))
    try:
        start = time.perf_counter()
        write_synthetic(work, ["NL"], train_rows=0, test_rows=args.rows, seed=0)
        csv = work / "AliExpress_NL" / "test.csv"
        synth_seconds = time.perf_counter() - start
        size = csv.stat().st_size
        print(f"synth: {args.rows:,} rows, {size / 2**20:,.0f} MiB in {synth_seconds:.1f} s")

        imports = measure("imports", csv, work / "unused")
        prepared = measure("prepare", csv, work / "prepared")
        naive = measure("naive", csv, work / "unused")
        mib = 2**20
        print(f"python + imports only:      peak RSS {imports['peak_rss'] / mib:8,.0f} MiB")
        print(
            f"prepare:                    peak RSS {prepared['peak_rss'] / mib:8,.0f} MiB, "
            f"{prepared['seconds']:6.1f} s ({args.rows / prepared['seconds']:,.0f} rows/s)"
        )
        print(
            f"pd.read_csv().to_numpy():   peak RSS {naive['peak_rss'] / mib:8,.0f} MiB, "
            f"{naive['seconds']:6.1f} s"
        )
        print(
            f"ratio naive / prepare: peak RSS {naive['peak_rss'] / prepared['peak_rss']:.1f}x, "
            f"time {naive['seconds'] / prepared['seconds']:.2f}x"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
