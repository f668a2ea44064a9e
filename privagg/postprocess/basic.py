"""Element-wise post-processing: non-negativity and rounding.

Both functions read only the released table and return a new
:class:`~privagg.release.Release` with the same privacy record plus a note
saying what was applied. Post-processing of a differentially private
release is differentially private with the same loss, so nothing is spent.

Intervals are moved with the values so that an interval that covered the
true value before still covers it after:

* clipping: a count's true value is >= 0, so clipping both ends of
  ``[ci_low, ci_high]`` at 0 keeps every true value it contained;
* rounding: a count's true value is an integer, so ``[floor(ci_low),
  ceil(ci_high)]`` keeps every true value it contained.

Apply them *after* :func:`privagg.postprocess.make_consistent`: clipping
and rounding each level separately breaks the sums across levels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from privagg.release import PrivacyRecord, Release


def _with_note(privacy: PrivacyRecord, step: str, note: str) -> PrivacyRecord:
    parameters = dict(privacy.parameters)
    parameters["postprocessing"] = [*parameters.get("postprocessing", []), step]
    return dataclasses.replace(privacy, parameters=parameters, notes=(*privacy.notes, note))


def clip_nonnegative(rel: Release) -> Release:
    """Set negative released values, and interval ends, to 0.

    Use it for statistics whose true value cannot be negative (counts,
    durations). NaN values (suppressed keys) stay NaN.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> rel = clip_nonnegative(pa.footfall(world, epsilon=0.1, level="zone", time_bin="6h", keys=keys))
    >>> bool((rel.to_pandas()["value"] >= 0).all())
    True
    """
    table = rel.to_pandas()
    for column in ("value", "ci_low", "ci_high"):
        values = table[column].to_numpy(dtype=float, copy=True)
        table[column] = np.where(values < 0, 0.0, values)
    privacy = _with_note(
        rel.privacy, "clip_nonnegative",
        "post-processed: negative values and interval ends set to 0 (no extra privacy loss); "
        "clipped values are biased upwards for keys whose true value is near 0.",
    )
    return Release(table, rel.key_columns, privacy)


def round_to_integers(rel: Release) -> Release:
    """Round released values to the nearest integer; widen intervals to integers.

    ``value`` is rounded half to even, ``ci_low`` rounded down and
    ``ci_high`` up, so an interval that covered an integer true value still
    covers it. NaN values stay NaN.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> rel = pa.round_to_integers(pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys))
    >>> table = rel.to_pandas()
    >>> bool((table.value == table.value.round()).all())   # post-processing: no budget spent
    True
    """
    table = rel.to_pandas()
    table["value"] = np.round(table["value"].to_numpy(dtype=float))
    table["ci_low"] = np.floor(table["ci_low"].to_numpy(dtype=float))
    table["ci_high"] = np.ceil(table["ci_high"].to_numpy(dtype=float))
    privacy = _with_note(
        rel.privacy, "round_to_integers",
        "post-processed: values rounded to integers, intervals widened to integer ends "
        "(no extra privacy loss).",
    )
    return Release(table, rel.key_columns, privacy)
