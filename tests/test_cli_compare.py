"""Reading releases back from disk, and ``privagg compare`` on two of them."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import privagg as pa
from privagg.cli import main
from privagg.release import Release


@pytest.fixture(scope="module")
def two_days(tmp_path_factory, small_city):
    """Hourly zone footfall of day 1 and day 2 of a small synthetic city, written as Parquet and CSV."""
    world = small_city
    out = tmp_path_factory.mktemp("releases")
    paths = {}
    for day, start in enumerate(pd.date_range(world.start, periods=2, freq="1D"), start=1):
        end = start + pd.Timedelta("1D")
        keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=start, end=end, time_bin="1h")
        rel = pa.footfall(world, epsilon=1.0, level="zone", time_bin="1h", keys=keys)
        for ext in ("parquet", "csv"):
            paths[day, ext] = out / f"day{day}.{ext}"
            rel.write(paths[day, ext])
        paths[day] = rel
    return paths


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_a_written_release_reads_back_whole(two_days, ext):
    original = two_days[1]
    back = Release.read(two_days[1, ext])
    assert back.key_columns == original.key_columns == ("zone_id", "time")
    assert back.privacy == original.privacy
    pd.testing.assert_frame_equal(back.to_pandas(), original.to_pandas(), check_dtype=ext == "parquet")
    assert pd.api.types.is_datetime64_any_dtype(back.to_pandas()["time"])


def test_reading_a_release_without_its_privacy_record_says_what_is_missing(tmp_path, two_days):
    lone = tmp_path / "lone.csv"
    lone.write_text(two_days[1, "csv"].read_text())
    with pytest.raises(pa.PrivaggInputError, match=r"lone.csv.privacy.json' does not exist. Fix: pass a release"):
        Release.read(lone)


def test_compare_two_days_writes_one_row_per_matched_key(capsys, tmp_path, two_days):
    out = tmp_path / "change.csv"
    code = main(["compare", str(two_days[2, "parquet"]), str(two_days[1, "csv"]), "--shift", "time=1D",
                 "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "footfall compared on zone_id, time" in stdout and f"written to {out}" in stdout
    table = pd.read_csv(out)
    assert len(table) == len(two_days[1])
    expected = (two_days[2].to_pandas()["value"] - two_days[1].to_pandas()["value"]).to_numpy()
    assert (table["difference"].to_numpy() == expected).all()
    assert {"diff_ci_low", "diff_ci_high", "ratio", "significant"} <= set(table.columns)


def test_compare_without_out_prints_the_significant_keys(capsys, two_days):
    assert main(["compare", str(two_days[1, "parquet"]), str(two_days[1, "parquet"])]) == 0
    assert "no key changed significantly" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--shift", "time"], r"--shift 'time' is not COL=OFFSET. Fix: e.g. --shift time=7D"),
    (["--out", "x.json"], r"--out 'x.json': unknown file type. Fix: end the file name in .parquet or .csv."),
    (["--shift", "time=soon"], r"shift\['time'\]='soon' is not a duration"),
])
def test_bad_compare_options_exit_2_naming_the_fix(capsys, two_days, argv, message):
    code = main(["compare", str(two_days[2, "parquet"]), str(two_days[1, "parquet"]), *argv])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
