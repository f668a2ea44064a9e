"""Regenerate every attack-strength figure in ``experiments/results/``: one command, each script in turn.

    .venv/bin/python experiments/attack_strength.py            # all of them, about 15-20 minutes on 2 cores
    .venv/bin/python experiments/attack_strength.py unicity    # the scripts whose names contain a word

Each script compares an attack's former figure with its strongest variant
(chosen on training games, measured on held-out ones) and the simple
baselines, on a synthetic city with a fixed seed. Scripts that print their
table get it written to ``results/<script>.md`` with the command and its run
time; the differencing and reconstruction scripts write their own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("attack_strength_membership", "attack_strength_trajectory", "attack_strength_unicity",
           "attack_strength_differencing", "attack_strength_reconstruction", "audit_strength")
WRITE_THEIR_OWN = ("attack_strength_differencing", "attack_strength_reconstruction")


def main(words: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    from privagg.atomic import atomic_write_text

    chosen = [s for s in SCRIPTS if not words or any(w in s for w in words)]
    for name in chosen:
        started = time.perf_counter()
        print(f"running {name} ...", flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True,
                              cwd=HERE.parent)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-4000:], sep="\n")
            print(f"{name} failed after {seconds:.0f} s")
            return 1
        if name not in WRITE_THEIR_OWN:
            atomic_write_text(HERE / "results" / f"{name}.md",
                              f"# {name}\n\nCommand: `python experiments/{name}.py` (run time {seconds:.0f} s)\n\n"
                              f"```\n{done.stdout.strip()}\n```\n")
        print(f"  {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
