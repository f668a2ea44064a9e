"""Markdown tables of an accuracy benchmark's results file, as ``benchmarks/README.md`` shows them.

    python benchmarks/accuracy_tables.py benchmarks/results/accuracy-<timestamp>.json [MORE.json ...]

With several files, a later file's cases replace an earlier one's (e.g. a case rerun with more draws).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from privagg.dp.bounds import Bounds


def short(b: dict[str, Any] | None) -> str:
    """The short form of a bounds dict (:meth:`privagg.Bounds.label`)."""
    return Bounds(**b).label() if b else "-"


def draws_text(shown: list[str]) -> str:
    """The bounds of each draw: all of them for up to 3 draws, else each distinct one with how often."""
    if len(shown) <= 3:
        return " / ".join(shown)
    counts = Counter(shown)
    return " / ".join(f"{b} (x{n})" for b, n in counts.most_common())


def tables(results: dict[str, Any]) -> str:
    rows = results["rows"]
    epsilons = sorted({r["epsilon"] for r in rows})
    cases = list(dict.fromkeys(r["case"] for r in rows))
    out = ["| case (keys) | metric | " + " | ".join(f"eps {e:g}" for e in epsilons) + " |",
           "| --- | --- | " + " | ".join("---" for _ in epsilons) + " |"]
    worst = []
    for case in cases:
        mine = {r["epsilon"]: r for r in rows if r["case"] == case}
        first = next(iter(mine.values()))
        m = first["metric"]
        cells = []
        for e in epsilons:
            r = mine.get(e)
            if r is None:
                cells.append("")
                continue
            lo, hi = r["ratio_range"]
            cells.append(f"{r[f'auto_{m}']:.4f} / {r[f'hand_{m}']:.4f} ({r['ratio']:.2f}x; {lo:.2f}-{hi:.2f})")
            worst.append((r["ratio"], case, e))
        out.append(f"| {case} ({first['keys']:,}) | {m.upper()} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Automatic choices (bounds of each draw; mechanism of the last):")
    for case in cases:
        mine = sorted((r for r in rows if r["case"] == case), key=lambda r: r["epsilon"])
        out.append(f"- {case}: " + "; ".join(
            f"eps {r['epsilon']:g}: " + draws_text([short(b) for b in r.get("auto_bounds_draws", [r["auto_bounds"]])])
            + f" {str(r['auto_mechanism'])[0].upper()}" for r in mine))
    within = sum(1 for w in worst if w[0] <= 1.25)
    out.append("")
    out.append(f"Within 1.25x of the best hand-picked: {within} of {len(worst)} cells; the largest ratio: "
               f"{max(worst)[0]:.2f}x ({max(worst)[1]}, eps {max(worst)[2]:g}).")
    peer = results.get("dp_mobility_report", {})
    if peer.get("best"):
        out.append("")
        out.append("| epsilon | privagg visits per cell, auto | dp_mobility_report visits per tile (selected, then fresh draws) | its best single draw |")
        out.append("| --- | --- | --- | --- |")
        for eps, b in sorted(peer["best"].items(), key=lambda kv: float(kv[0])):
            ours = [r for r in rows if r["case"] == "visits cell (week)" and r["epsilon"] == float(eps)]
            out.append(f"| {float(eps):g} | {ours[0]['auto_smape']:.4f} | {b['smape']:.4f} (max_trips_per_user="
                       f"{b['max_trips_per_user']}) | {b['best_single_draw']:.4f} |" if ours else "")
    return "\n".join(out)


def merged(paths: list[Path]) -> dict[str, Any]:
    """The results of ``paths``, a later file's cases replacing an earlier one's; the peer from the first that has it."""
    out: dict[str, Any] = {"rows": []}
    for path in paths:
        data = json.loads(path.read_text())
        cases = {r["case"] for r in data["rows"]}
        out["rows"] = [r for r in out["rows"] if r["case"] not in cases] + data["rows"]
        if data.get("dp_mobility_report", {}).get("best") and "dp_mobility_report" not in out:
            out["dp_mobility_report"] = data["dp_mobility_report"]
    order = {c: i for i, c in enumerate(dict.fromkeys(r["case"] for path in paths[:1]
                                                      for r in json.loads(path.read_text())["rows"]))}
    out["rows"].sort(key=lambda r: (order.get(r["case"], len(order)), r["epsilon"]))
    return out


if __name__ == "__main__":
    print(tables(merged([Path(a) for a in sys.argv[1:]])))
