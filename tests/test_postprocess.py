"""Post-processing: clipping, rounding, hierarchical consistency (Hay et al. 2010).

Noisy releases are simulated here with OpenDP's discrete Laplace sampler (the
same mechanism as privagg's DP releases) on known true counts, so that errors
can be measured against the truth.
"""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pandas as pd
import pytest

from privagg.errors import PrivaggInputError
from privagg.postprocess import (
    NoiseModel,
    clip_nonnegative,
    consistent_estimates,
    make_consistent,
    noise_interval,
    noise_model,
    round_to_integers,
)
from privagg.release import PrivacyRecord, Release

dp.enable_features("contrib")

TIMES = pd.date_range("2026-01-05", periods=24, freq="1h")


def record(scale: float | None, *, statistic: str = "footfall", level: str = "cell", mechanism: str | None = None):
    return PrivacyRecord(
        statistic=statistic, method="dp" if scale else "raw",
        privacy_unit="one subscriber (user_id) over 2026-01-05 to 2026-01-06",
        epsilon=1.0 if scale else None, formally_private=bool(scale),
        mechanism=mechanism or ("discrete Laplace (OpenDP)" if scale else None),
        noise_scale=scale, parameters={"level": level, "ci_level": 0.95},
    )


def opendp_noise(n: int, scale: float) -> np.ndarray:
    """``n`` draws of OpenDP's discrete Laplace noise with the given scale."""
    meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64), scale=scale)
    return np.asarray(meas([0] * n), dtype=float)


def noisy_release(truth: pd.DataFrame, keys: list[str], scale: float, *, level: str, noise_scale_claimed=None) -> Release:
    table = truth[keys].copy()
    table["value"] = truth["value"].to_numpy(dtype=float) + opendp_noise(len(truth), scale)
    q_lo, q_hi = NoiseModel("discrete_laplace", scale).interval(0.95)
    table["ci_low"] = table["value"] - q_hi
    table["ci_high"] = table["value"] - q_lo
    return Release(table, keys, record(noise_scale_claimed or scale, level=level))


# --------------------------------------------------------------------------- a small city
def city() -> pd.DataFrame:
    """40 cells in 10 zones (2 to 6 cells each) in 3 districts."""
    sizes = [2, 3, 4, 5, 6, 2, 3, 4, 5, 6]
    zone = np.repeat(np.arange(10), sizes)
    district = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])[zone]
    n = len(zone)
    return pd.DataFrame({
        "cell_id": np.arange(100, 100 + n), "zone_id": zone + 10, "district_id": district + 1,
        "x": np.arange(n, dtype=float), "y": np.zeros(n), "land_use": "retail",
    })


def truths(cells: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """True counts per cell x hour, and their sums per zone and district."""
    rng = np.random.default_rng(seed)
    cell = pd.DataFrame({
        "cell_id": np.repeat(cells["cell_id"].to_numpy(), len(TIMES)),
        "time": np.tile(TIMES, len(cells)),
        "value": rng.poisson(40, len(cells) * len(TIMES)),
    })
    withmap = cell.merge(cells[["cell_id", "zone_id", "district_id"]], on="cell_id")
    zone = withmap.groupby(["zone_id", "time"], as_index=False)["value"].sum()
    district = withmap.groupby(["district_id", "time"], as_index=False)["value"].sum()
    return {"cell": cell, "zone": zone, "district": district}


KEYS = {"cell": ["cell_id", "time"], "zone": ["zone_id", "time"], "district": ["district_id", "time"]}


# --------------------------------------------------------------------------- clip and round
def simple_release(values, lows, highs, scale=2.0) -> Release:
    table = pd.DataFrame({"cell_id": np.arange(len(values)), "value": values, "ci_low": lows, "ci_high": highs})
    return Release(table, ["cell_id"], record(scale))


def test_clip_nonnegative_clips_values_and_interval_ends_and_keeps_the_record():
    rel = simple_release([-3.0, 2.0, np.nan, 0.5], [-9.0, -4.0, np.nan, -1.0], [3.0, 8.0, np.nan, 2.0])
    out = clip_nonnegative(rel)
    table = out.to_pandas()
    assert table["value"].tolist()[:2] == [0.0, 2.0] and np.isnan(table["value"][2])
    assert table["ci_low"].tolist()[:2] == [0.0, 0.0]
    assert table["ci_high"].tolist()[:2] == [3.0, 8.0]
    assert out.privacy.epsilon == rel.privacy.epsilon and out.privacy.noise_scale == rel.privacy.noise_scale
    assert out.privacy.notes[-1].startswith("post-processed: negative values")
    assert out.privacy.parameters["postprocessing"] == ["clip_nonnegative"]
    assert rel.to_pandas()["value"][0] == -3.0  # the input is untouched
    assert out.key_columns == rel.key_columns


def test_round_to_integers_rounds_values_and_widens_intervals_to_integers():
    rel = simple_release([1.4, 2.6, -0.4], [-1.2, 0.5, -3.7], [4.1, 5.0, 2.2])
    out = round_to_integers(rel).to_pandas()
    assert out["value"].tolist() == [1.0, 3.0, -0.0]
    assert out["ci_low"].tolist() == [-2.0, 0.0, -4.0]
    assert out["ci_high"].tolist() == [5.0, 5.0, 3.0]


def test_clip_then_round_keeps_every_integer_nonnegative_truth_covered():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 2000)
    noise = opendp_noise(2000, 2.0)
    value = truth + noise + rng.uniform(-0.5, 0.5, 2000)  # fractional values, e.g. after make_consistent
    q = 6.0
    rel = simple_release(value, value - q, value + q)
    before = (value - q <= truth) & (truth <= value + q)
    out = round_to_integers(clip_nonnegative(rel)).to_pandas()
    after = (out["ci_low"] <= truth) & (truth <= out["ci_high"])
    assert np.all(after[before])
    assert np.all((out["ci_low"] <= out["value"]) & (out["value"] <= out["ci_high"]))


# --------------------------------------------------------------------------- noise model
def test_noise_model_reads_the_privacy_record():
    assert noise_model(record(None)) is None
    assert noise_model(record(2.0)) == NoiseModel("discrete_laplace", 2.0)
    assert noise_model(record(3.0, mechanism="discrete Gaussian (OpenDP)")) == NoiseModel("discrete_gaussian", 3.0)
    assert noise_model(record(1.0, mechanism="naive floating-point Laplace (numpy; INSECURE)")) == NoiseModel("laplace", 1.0)
    with pytest.raises(PrivaggInputError, match="mechanism 'exponential'"):
        noise_model(record(1.0, mechanism="exponential"))


def test_noise_variance_and_interval_match_closed_forms():
    a = math.exp(-1 / 2.0)
    assert NoiseModel("discrete_laplace", 2.0).variance == pytest.approx(2 * a / (1 - a) ** 2)
    assert NoiseModel("laplace", 1.5).variance == pytest.approx(2 * 1.5**2)
    assert NoiseModel("discrete_gaussian", 10.0).variance == pytest.approx(100.0, rel=1e-6)
    # Discrete Laplace: P(|X| > k) = 2 a^(k+1) / (1 + a); the 95% interval is the smallest symmetric one.
    lo, hi = NoiseModel("discrete_laplace", 2.0).interval(0.95)
    k = int(hi)
    assert lo == -hi
    assert 2 * a ** (k + 1) / (1 + a) <= 0.05 < 2 * a ** k / (1 + a)


def test_interval_of_a_difference_is_the_exact_convolution():
    # Difference of two discrete Laplace(1) noises, by brute force on a wide support.
    support = np.arange(-60, 61)
    p = np.exp(-np.abs(support))
    p /= p.sum()
    diff = np.convolve(p, p)
    dsupport = np.arange(-120, 121)
    lo, hi = noise_interval([NoiseModel("discrete_laplace", 1.0)] * 2, 0.9, signs=[1, -1])
    inside = (dsupport >= lo) & (dsupport <= hi)
    assert diff[inside].sum() >= 0.9
    assert diff[dsupport < lo].sum() <= 0.05 and diff[dsupport > hi].sum() <= 0.05
    assert diff[dsupport <= lo].sum() > 0.05  # and it is the tightest such interval


# --------------------------------------------------------------------------- consistency: algebra
@pytest.mark.parametrize("seed", range(5))
def test_two_pass_estimate_equals_weighted_least_squares(seed):
    rng = np.random.default_rng(seed)
    n_cell, n_zone, n_district, n_bins = 25, 7, 3, 4
    zone_of = np.concatenate([np.arange(n_zone), rng.integers(0, n_zone, n_cell - n_zone)])
    district_of = np.concatenate([np.arange(n_district), rng.integers(0, n_district, n_zone - n_district)])
    ys = [rng.normal(size=(n, n_bins)) * 10 for n in (n_cell, n_zone, n_district)]
    variances = list(rng.uniform(0.1, 5.0, 3))
    u = consistent_estimates(ys, variances, [zone_of, district_of])
    # Dense weighted least squares over the leaves.
    to_zone = (zone_of[None, :] == np.arange(n_zone)[:, None]).astype(float)
    to_district = (district_of[zone_of][None, :] == np.arange(n_district)[:, None]).astype(float)
    design = np.vstack([np.eye(n_cell), to_zone, to_district])
    w = np.sqrt(np.concatenate([np.full(n, 1 / s) for n, s in zip((n_cell, n_zone, n_district), variances)]))
    x, *_ = np.linalg.lstsq(design * w[:, None], np.vstack(ys) * w[:, None], rcond=None)
    np.testing.assert_allclose(u[0], x, atol=1e-9)
    np.testing.assert_allclose(u[1], to_zone @ x, atol=1e-9)
    np.testing.assert_allclose(u[2], to_district @ x, atol=1e-9)


def test_an_exact_level_is_kept_as_a_constraint():
    ys = [np.array([[1.0], [2.0], [4.0]]), np.array([[10.0]])]
    u = consistent_estimates(ys, [1.0, 0.0], [np.array([0, 0, 0])])
    assert u[1][0, 0] == 10.0
    np.testing.assert_allclose(u[0][:, 0], [2.0, 3.0, 5.0])


# --------------------------------------------------------------------------- make_consistent
def releases_for(cells, truth, scales, seed_offset=0):
    return {lvl: noisy_release(truth[lvl], KEYS[lvl], scales[lvl], level=lvl) for lvl in truth}


def test_make_consistent_output_adds_up_across_levels_and_keeps_keys():
    cells = city()
    truth = truths(cells)
    rels = releases_for(cells, truth, {"cell": 3.0, "zone": 3.0, "district": 3.0})
    out = make_consistent(rels, cells)
    assert set(out) == {"cell", "zone", "district"}
    for lvl in out:
        assert out[lvl].key_columns == rels[lvl].key_columns
        pd.testing.assert_frame_equal(out[lvl].to_pandas()[KEYS[lvl]], rels[lvl].to_pandas()[KEYS[lvl]])
        assert "make_consistent(cell, zone, district)" in out[lvl].privacy.parameters["postprocessing"]
        assert "Hay et al. 2010" in out[lvl].privacy.notes[-1]
        assert "epsilon=3" in out[lvl].privacy.notes[-1]
        assert out[lvl].privacy.epsilon == rels[lvl].privacy.epsilon
    cell = out["cell"].to_pandas().merge(cells[["cell_id", "zone_id", "district_id"]], on="cell_id")
    zone = out["zone"].to_pandas().set_index(["zone_id", "time"])["value"]
    district = out["district"].to_pandas().set_index(["district_id", "time"])["value"]
    np.testing.assert_allclose(cell.groupby(["zone_id", "time"])["value"].sum().loc[zone.index], zone)
    np.testing.assert_allclose(cell.groupby(["district_id", "time"])["value"].sum().loc[district.index], district)
    table = out["cell"].to_pandas()
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()


def test_make_consistent_accepts_a_list_and_two_levels_in_any_row_order():
    cells = city()
    truth = truths(cells)
    zone = noisy_release(truth["zone"].sample(frac=1, random_state=1), KEYS["zone"], 2.0, level="zone")
    district = noisy_release(truth["district"], KEYS["district"], 2.0, level="district")
    out = make_consistent([district, zone], cells)
    assert set(out) == {"zone", "district"}
    z = out["zone"].to_pandas().merge(cells[["zone_id", "district_id"]].drop_duplicates(), on="zone_id")
    d = out["district"].to_pandas().set_index(["district_id", "time"])["value"]
    np.testing.assert_allclose(z.groupby(["district_id", "time"])["value"].sum().loc[d.index], d)
    # Row order of the input is kept.
    pd.testing.assert_frame_equal(out["zone"].to_pandas()[KEYS["zone"]], zone.to_pandas()[KEYS["zone"]])


def test_make_consistent_error_messages():
    cells = city()
    truth = truths(cells)
    rels = releases_for(cells, truth, {"cell": 2.0, "zone": 2.0, "district": 2.0})
    with pytest.raises(PrivaggInputError, match=r"needs releases at two or more of cell, zone, district; got \['cell'\]"):
        make_consistent({"cell": rels["cell"]}, cells)
    with pytest.raises(PrivaggInputError, match=r"releases\['zone'\] is keyed by cell_id"):
        make_consistent({"zone": rels["cell"], "district": rels["district"]}, cells)
    partial = Release(rels["cell"].to_pandas().iloc[:-1], KEYS["cell"], rels["cell"].privacy)
    with pytest.raises(PrivaggInputError, match="has 959 keys but the hierarchy needs 40 areas x 24 other keys = 960"):
        make_consistent({"cell": partial, "zone": rels["zone"]}, cells)
    broken = cells.copy()
    broken.loc[0, "district_id"] = 3  # zone 10 now lies in districts 1 and 3
    with pytest.raises(PrivaggInputError, match="zone_id=10 lies in several district_id values"):
        make_consistent(rels, broken)
    day = Release(truth["zone"].assign(value=1.0).iloc[:0], KEYS["zone"], record(2.0, level="zone"))
    with pytest.raises(PrivaggInputError, match="has 0 keys"):
        make_consistent({"cell": rels["cell"], "zone": day}, cells)
    with pytest.raises(PrivaggInputError, match=r"ci_level=1\.2 must be strictly between 0 and 1\. Fix: e\.g\. ci_level=0\.95\."):
        make_consistent(rels, cells, ci_level=1.2)
    with pytest.raises(PrivaggInputError, match=r"draws=10 must be a whole number >= 100"):
        make_consistent(rels, cells, draws=10)
    no_time = Release(truth["district"].groupby("district_id", as_index=False)["value"].sum(), ["district_id"], record(2.0))
    with pytest.raises(PrivaggInputError, match=r"has non-area keys \[\]"):
        make_consistent({"cell": rels["cell"], "district": no_time}, cells)


# --------------------------------------------------------------------------- consistency lowers error
REPS = 30


def squared_errors(rels, truth):
    return {lvl: float(np.sum((rels[lvl].to_pandas()["value"].to_numpy() - truth[lvl]["value"].to_numpy()) ** 2))
            for lvl in rels}


def paired_gain(cells, truth, scales, claimed=None):
    """Per repetition: squared error before minus after make_consistent, per level; and coverage."""
    gains = {lvl: [] for lvl in truth}
    covered = total = 0
    for _ in range(REPS):
        rels = {
            lvl: noisy_release(truth[lvl], KEYS[lvl], scales[lvl], level=lvl,
                               noise_scale_claimed=(claimed or scales)[lvl])
            for lvl in truth
        }
        out = make_consistent(rels, cells)
        before, after = squared_errors(rels, truth), squared_errors(out, truth)
        for lvl in truth:
            gains[lvl].append(before[lvl] - after[lvl])
        t = out["cell"].to_pandas()
        true = truth["cell"]["value"].to_numpy()
        covered += int(((t["ci_low"] <= true) & (true <= t["ci_high"])).sum())
        total += len(t)
    return {lvl: np.asarray(g) for lvl, g in gains.items()}, covered / total


def z_score(x: np.ndarray) -> float:
    return float(x.mean() / (x.std(ddof=1) / math.sqrt(len(x))))


@pytest.mark.statistical
def test_consistency_lowers_error_at_every_level():
    """Paired over 30 repetitions of releases at three levels (OpenDP discrete Laplace, scale 4).

    For each level the per-repetition gain (sum of squared errors of the raw
    release minus that of the consistent one) is i.i.d. across repetitions;
    the test asserts a one-sided z-score above 4.75 (false-failure probability
    < 1e-6 per level under the normal approximation, < 3e-6 overall; the
    observed z-scores are far larger: ~50 at cell, ~17 at zone, ~10 at
    district level). The mean squared error falls by at least 10% at every
    level (observed: to ~0.80 of the raw one at cell level, ~0.62 at zone,
    ~0.68 at district; the district ratio's sd over 30 repetitions is ~0.03,
    so 0.9 is ~7 sd away). Interval coverage of the consistent cell values is
    checked at 0.95 +- 0.015 (binomial sd over 28,800 cells x bins is 0.0013,
    inflated at most ~3x by correlation within a zone; Monte Carlo quantile
    error with 4,000 draws ~0.004).
    """
    cells = city()
    truth = truths(cells)
    gains, coverage = paired_gain(cells, truth, {"cell": 4.0, "zone": 4.0, "district": 4.0})
    for lvl, g in gains.items():
        assert z_score(g) > 4.75, (lvl, z_score(g), g.mean())
    variance = NoiseModel("discrete_laplace", 4.0).variance
    for lvl, g in gains.items():
        mse_ratio = 1 - g.mean() / (variance * len(truth[lvl]))  # consistent MSE / raw MSE
        assert mse_ratio < 0.9, (lvl, mse_ratio)
    assert abs(coverage - 0.95) < 0.015, coverage


@pytest.mark.statistical
def test_the_error_check_fails_when_the_stated_noise_is_wrong():
    """The same check rejects a consistency step fed a false noise scale.

    District values carry noise of scale 40 but their record claims 0.4, so
    the least squares trusts them ~10,000x too much and pushes their noise
    down into the cells: the cell-level gain is then strongly negative
    (the assertion mirrors the one above, with the sign flipped).
    """
    cells = city()
    truth = truths(cells)
    gains, coverage = paired_gain(
        cells, truth, {"cell": 4.0, "zone": 4.0, "district": 40.0},
        claimed={"cell": 4.0, "zone": 4.0, "district": 0.4},
    )
    assert z_score(gains["cell"]) < -4.75
    assert coverage < 0.9


# --------------------------------------------------------------------------- with privagg's own releases
def test_make_consistent_on_footfall_released_at_three_levels():
    import privagg as pa
    from privagg.queries import KeySet

    cells = city()
    rng = np.random.default_rng(5)
    n_users = 400
    users = pd.DataFrame({
        "user_id": np.arange(n_users, dtype="int64"), "age_band": "25-34", "gender": "female",
        "contract": "prepaid", "arpu": 20.0, "home_cell": cells["cell_id"].iloc[0],
        "work_cell": cells["cell_id"].iloc[1], "opt_in": True,
    })
    n = 4000
    events = pd.DataFrame({
        "user_id": rng.integers(0, n_users, n).astype("int64"),
        "cell_id": rng.choice(cells["cell_id"].to_numpy(), n),
        "ts": pd.Timestamp("2026-01-05") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
    })
    rels = {}
    for lvl in ("cell", "zone", "district"):
        keys = KeySet.areas_by_time(cells, level=lvl, start="2026-01-05", end="2026-01-06", time_bin="6h")
        rels[lvl] = pa.footfall(events, users=users, cells=cells, epsilon=1.0, level=lvl, time_bin="6h", keys=keys,
                                bounds=pa.Bounds(max_partitions=4))
    out = make_consistent(rels, cells)
    cell = out["cell"].to_pandas().merge(cells[["cell_id", "district_id"]], on="cell_id")
    district = out["district"].to_pandas().set_index(["district_id", "time"])["value"]
    np.testing.assert_allclose(cell.groupby(["district_id", "time"])["value"].sum().loc[district.index], district)
    assert out["zone"].privacy.noise_scale == rels["zone"].privacy.noise_scale == 4.0
    # Post-processing afterwards keeps the record and adds notes.
    final = round_to_integers(clip_nonnegative(out["cell"]))
    assert final.privacy.parameters["postprocessing"] == [
        "make_consistent(cell, zone, district)", "clip_nonnegative", "round_to_integers"]
