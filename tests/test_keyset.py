import numpy as np
import pandas as pd
import pytest

from tests.dp_fixtures import tiny_world
from privagg.errors import PrivaggInputError
from privagg.queries import KeySet, Query, parse_time_bin, public_keys, time_bins


def test_cross_products_and_sizes():
    ks = KeySet.from_values(zone_id=[1, 2, 3]) * KeySet.from_values(gender=["female", "male"])
    assert len(ks) == 6
    assert ks.columns == ("zone_id", "gender")
    df = ks.to_pandas()
    assert df.iloc[0].tolist() == [1, "female"] and df.iloc[-1].tolist() == [3, "male"]
    assert KeySet.from_values(a=[1, 2], b=[3]) == KeySet.from_values(b=[3]) * KeySet.from_values(a=[2, 1])


def test_areas_by_time_covers_every_area_and_bin():
    w = tiny_world()
    ks = KeySet.areas_by_time(w.cells, level="zone", start="2026-01-05", end="2026-01-07", time_bin="1h")
    assert len(ks) == 2 * 48
    df = ks.to_pandas()
    assert sorted(df.zone_id.unique()) == [10, 20]
    assert df.time.min() == pd.Timestamp("2026-01-05") and df.time.max() == pd.Timestamp("2026-01-06 23:00")


def test_encode_decode_round_trip_and_outside_keys():
    ks = KeySet.from_values(cell_id=[5, 7, 9]) * KeySet.time_bins("2026-01-05", "2026-01-06", "6h")
    cells = np.array([7, 9, 5, 8])
    times = pd.to_datetime(["2026-01-05 06:00", "2026-01-05 18:00", "2026-01-05 00:00", "2026-01-05 00:00"]).to_numpy()
    codes = ks.encode({"cell_id": cells, "time": times})
    assert codes[-1] == -1  # cell 8 is not a key
    back = ks.decode(codes[:3])
    assert back.cell_id.tolist() == [7, 9, 5]
    assert back.time.tolist() == list(pd.to_datetime(times[:3]))
    # a time that is not a bin start of the set is outside it
    assert ks.encode({"cell_id": np.array([5]), "time": pd.to_datetime(["2026-01-05 03:00"]).to_numpy()})[0] == -1


def test_multi_column_factor():
    ks = KeySet.from_dataframe(pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"]}))
    assert len(ks) == 3
    codes = ks.encode({"a": np.array([2, 2, 1]), "b": np.array(["x", "y", "y"], dtype=object)})
    assert codes.tolist() == [2, -1, 1]


def test_key_type_mismatch_names_the_column_and_fix():
    ks = KeySet.from_values(zone_id=["10", "20"])
    with pytest.raises(PrivaggInputError, match=r"keys column 'zone_id' holds str values but the data's 'zone_id' is int. Fix: cast them with .astype\('int64'\)"):
        ks.check_columns(["zone_id"], {"zone_id": "int"})
    with pytest.raises(PrivaggInputError, match=r"keys has columns \['zone_id'\] but this release is keyed by \['zone_id', 'time'\]"):
        ks.check_columns(["zone_id", "time"])


@pytest.mark.parametrize("bad", ["7min", "5h", "2D", "banana", None])
def test_unknown_time_bins_are_refused(bad):
    with pytest.raises(PrivaggInputError, match=r"is not a supported time bin. Fix: use a duration from 15 minutes to 1 day"):
        parse_time_bin(bad)


def test_time_bins_must_align():
    with pytest.raises(PrivaggInputError, match=r"start=2026-01-05 00:30:00 is not aligned to time_bin=1h. Fix: use 2026-01-05 00:00:00"):
        time_bins("2026-01-05 00:30", "2026-01-06", "1h")
    assert len(time_bins("2026-01-05", "2026-01-06", "15min")) == 96


def test_public_keys_of_queries_come_from_public_lists():
    w = tiny_world()
    ks = public_keys(Query("segment_counts", by=("age_band", "tag_commuter"), level="district", time_bin="1D"),
                     w.cells, start="2026-01-05", end="2026-01-06")
    assert len(ks) == 6 * 2 * 1 * 1
    with pytest.raises(PrivaggInputError, match=r"no public list of values for user column 'home_cell'"):
        public_keys(Query("segment_counts", by=("home_cell",)), w.cells, start="2026-01-05", end="2026-01-06")


def test_query_validation_messages():
    with pytest.raises(PrivaggInputError, match=r"statistic='heat' is unknown. Fix: use one of footfall"):
        Query("heat")
    with pytest.raises(PrivaggInputError, match=r"level='street' is not a spatial level. Fix: use one of 'cell', 'zone', 'district'"):
        Query("footfall", level="street")
    with pytest.raises(PrivaggInputError, match=r"segment_mean needs column="):
        Query("segment_mean")
    assert Query("od_flows").key_columns() == ("origin_zone", "destination_zone", "time")
