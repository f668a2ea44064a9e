"""``privagg experiment run SPEC --out DIR`` and ``privagg experiment plot DIR``.

``run`` expands the spec's grid, runs the cells not yet finished in DIR on
both cores with a progress bar, and writes DIR/results.parquet and
DIR/provenance.json. Run it again after an interruption to resume.

``plot`` draws the figures that apply to DIR's results (utility-risk
frontier per attack, error against epsilon, footfall heat map, OD flow map)
into DIR/figures as PNG and SVG, and writes DIR/report.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment", help="run experiment sweeps and plot their results",
        description="Run a sweep described by a TOML spec, or plot a finished one.",
    )
    sub = parser.add_subparsers(dest="experiment_command", metavar="ACTION")
    run = sub.add_parser("run", help="run (or resume) the grid of a spec",
                         description="Run every cell of SPEC not already finished in DIR; rerun to resume.")
    run.add_argument("spec", metavar="SPEC", help="experiment spec (TOML), e.g. experiments/frontier.toml")
    run.add_argument("--out", required=True, metavar="DIR", help="experiment directory (created or resumed)")
    run.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes (default 2)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--plot", action="store_true", help="draw the figures and the report when done")
    run.set_defaults(func=_run)
    plot = sub.add_parser("plot", help="draw the figures and the report of a finished run",
                          description="Draw DIR/figures/*.png|svg and DIR/report.html from DIR/results.parquet.")
    plot.add_argument("dir", metavar="DIR", help="experiment directory holding results.parquet")
    plot.set_defaults(func=_plot)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _run(args: argparse.Namespace) -> int:
    from privagg.errors import PrivaggInputError
    from privagg.harness.runner import run_experiment

    if args.workers < 1:
        raise PrivaggInputError(f"--workers {args.workers}: must be at least 1. Fix: e.g. --workers 2.")
    summary = run_experiment(args.spec, args.out, max_workers=args.workers, progress=not args.no_progress)
    print(
        f"{summary.n_cells} cells: {summary.n_run} run, {summary.n_reused} reused "
        f"in {summary.provenance['wall_seconds']:.1f} s.\n"
        f"results: {summary.out_dir / 'results.parquet'}\n"
        f"provenance: {summary.out_dir / 'provenance.json'}"
    )
    if args.plot:
        return _plot(argparse.Namespace(dir=args.out))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from privagg.harness.plots import plot_experiment
    from privagg.harness.experiment_report import write_experiment_report

    out = Path(args.dir)
    figures = plot_experiment(out)
    html, _ = write_experiment_report(out, figures)
    for name, paths in figures.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    print(f"report: {html}")
    return 0
