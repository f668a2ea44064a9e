"""The experiment harness: specs, grid runner, results store, plots and reports.

``spec`` parses TOML experiment specs; ``runner`` expands them into cells and
runs them (in parallel, resumably); ``store`` keeps per-cell results and the
final table with provenance; ``plots`` draws the figures; ``report`` writes the
self-contained HTML report and its JSON twin.
"""
