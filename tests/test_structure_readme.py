"""The README's example of the structured releases (continual, OD hierarchy, shrinkage) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_structure_example_runs():
    section = README.read_text().split("### Accuracy from structure", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    counter, flows, est = namespace["counter"], namespace["flows"], namespace["est"]
    assert counter.budget.spent["rho"] <= 0.015 * (1 + 1e-9)  # the tree's levels, not 14 daily releases
    assert namespace["week1"].shape == (len(namespace["zones"]),)
    zone = flows["zone"]["value"].to_numpy()
    rest = flows["cell_unselected"]["value"].to_numpy()
    per_zone = np.bincount(namespace["noisy"].selected.parents, weights=flows["cell"]["value"], minlength=len(zone))
    np.testing.assert_array_equal(per_zone + rest, zone)
    assert [r.keys for r in namespace["noisy"].record] == ["public", "public", "public", "selected"]
    assert (est.low <= est.value).all() and (est.value <= est.high).all()
