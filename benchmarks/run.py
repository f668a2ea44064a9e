"""Run every benchmark with its default arguments (``make bench``).

Runs ``bench_footfall.py`` (DP footfall on 20M events against Polars,
numpy.sort and PipelineDP on 1M events), ``bench_statistics.py`` (every
statistic against the non-private Polars group-by of the same data, at its
quick default of 2M rows), ``bench_accuracy.py`` (errors of
automatic bounds and mechanism against hand-picked bounds and
dp_mobility_report) and, when present, ``bench_synth.py``.
Each prints its figures and writes JSON to ``benchmarks/results/``.
Extra arguments are passed to bench_footfall.py, e.g.
``python benchmarks/run.py --events 20000000 100000000``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    status = 0
    scripts = [("bench_footfall.py", argv), ("bench_statistics.py", []), ("bench_accuracy.py", [])]
    if (HERE / "bench_synth.py").exists():
        scripts.append(("bench_synth.py", []))
    for script, args in scripts:
        print(f"== {script} {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *args])
        if code:
            print(f"{script} exited with {code}", file=sys.stderr)
            status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
