"""Input validation: every problem is caught before any work, with a message naming table, column, rows and fix."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from privagg.errors import PrivaggInputError
from privagg.schema import load_table, validate_table
from tests import fixture_tables as tables


@pytest.mark.parametrize("name", ["cells", "users", "events", "stays", "trips"])
def test_valid_tables_pass(name):
    df = tables.all_tables()[name]
    assert validate_table(df, name, cells=tables.cells()) is df


def test_missing_column_is_named_with_the_full_schema():
    df = tables.stays().drop(columns="end")
    with pytest.raises(PrivaggInputError) as err:
        validate_table(df, "stays")
    assert str(err.value) == (
        "table 'stays', column 'end': missing column 'end'. "
        "Fix: 'stays' needs the columns user_id, cell_id, start, end; rename or add the missing ones."
    )


def test_extra_column_is_rejected():
    df = tables.events().assign(imsi=1)
    with pytest.raises(PrivaggInputError, match=re.escape("table 'events', column 'imsi': unexpected column 'imsi'. Fix: drop or rename them.")):
        validate_table(df, "events")


def test_users_accept_tag_columns_but_explain_the_naming_rule():
    validate_table(tables.users().assign(tag_travel=False), "users")
    with pytest.raises(PrivaggInputError, match="segment tags must be boolean columns named 'tag_<name>'"):
        validate_table(tables.users().assign(travel=False), "users")


def test_tag_columns_must_be_boolean():
    df = tables.users().assign(tag_travel=[1, 0, 1])
    with pytest.raises(PrivaggInputError, match=re.escape("column 'tag_travel': has dtype int64, expected boolean")):
        validate_table(df, "users")


def test_wrong_dtype_names_column_and_cast():
    df = tables.stays().assign(start=lambda d: d["start"].astype(str))
    with pytest.raises(PrivaggInputError) as err:
        validate_table(df, "stays")
    message = str(err.value)
    assert message.startswith("table 'stays', column 'start': has dtype ")
    assert message.endswith("expected datetime64. Fix: parse it with pandas.to_datetime (timezone-naive, local time).")


def test_float_ids_are_rejected():
    df = tables.events().assign(user_id=lambda d: d["user_id"].astype(float))
    with pytest.raises(PrivaggInputError, match=re.escape("column 'user_id': has dtype float64, expected integer. Fix: cast it with .astype('int64').")):
        validate_table(df, "events")


def test_timezone_aware_timestamps_are_rejected():
    df = tables.events().assign(ts=lambda d: d["ts"].dt.tz_localize("UTC"))
    with pytest.raises(PrivaggInputError, match="column 'ts': has dtype datetime64"):
        validate_table(df, "events")


def test_nulls_in_keys_counted():
    df = tables.events()
    df["ts"] = df["ts"].astype("datetime64[ns]")
    df.loc[[1, 3], "ts"] = pd.NaT
    with pytest.raises(PrivaggInputError) as err:
        validate_table(df, "events")
    assert str(err.value) == (
        "table 'events', column 'ts': has null values (2 rows). "
        "Fix: drop or fill those rows; 'ts' is a key and must be set on every row."
    )


def test_end_before_start_gives_count_and_example():
    df = tables.stays()
    df.loc[2, "end"] = pd.Timestamp("2026-01-05 09:00")
    with pytest.raises(PrivaggInputError) as err:
        validate_table(df, "stays")
    assert str(err.value) == (
        "table 'stays', column 'end': has 'end' before 'start', e.g. start=2026-01-05 09:30:00, "
        "end=2026-01-05 09:00:00 (1 row). Fix: swap or drop those rows; every row needs start <= end."
    )


def test_arrive_before_depart():
    df = tables.trips()
    df.loc[0, "arrive"] = pd.Timestamp("2026-01-05 08:00")
    with pytest.raises(PrivaggInputError, match="has 'arrive' before 'depart'"):
        validate_table(df, "trips")


def test_unknown_cells_are_reported_with_example():
    df = tables.trips()
    df.loc[:, "destination_cell"] = [1, 99]
    with pytest.raises(PrivaggInputError) as err:
        validate_table(df, "trips", cells=tables.cells())
    assert str(err.value) == (
        "table 'trips', column 'destination_cell': refers to cells absent from 'cells', e.g. 99 (1 row). "
        "Fix: add those cells to the cells table or drop the rows that use them."
    )


def test_duplicate_ids():
    df = pd.concat([tables.users(), tables.users().iloc[[1]]], ignore_index=True)
    with pytest.raises(PrivaggInputError, match=re.escape("table 'users', column 'user_id': has duplicate ids, e.g. 11 (1 row). Fix: make 'user_id' unique (one row per id).")):
        validate_table(df, "users")


def test_unknown_table_name():
    with pytest.raises(PrivaggInputError, match=re.escape("table='visits' is not a privagg table. Fix: use one of cells, users, events, stays, trips.")):
        validate_table(tables.stays(), "visits")


def test_not_a_dataframe():
    with pytest.raises(PrivaggInputError, match="expected a pandas DataFrame, got dict"):
        validate_table({"user_id": [1]}, "events")


def test_load_csv_parses_datetimes_and_validates(tmp_path):
    path = tmp_path / "stays.csv"
    tables.stays().to_csv(path, index=False)
    loaded = load_table(path, "stays", cells=tables.cells())
    pd.testing.assert_frame_equal(loaded, tables.stays(), check_dtype=False)
    assert pd.api.types.is_datetime64_any_dtype(loaded["start"])


def test_load_csv_with_bad_timestamps(tmp_path):
    path = tmp_path / "events.csv"
    tables.events().assign(ts="yesterday").to_csv(path, index=False)
    with pytest.raises(PrivaggInputError, match="column 'ts': could not be parsed as datetimes"):
        load_table(path, "events")


def test_load_parquet_round_trip(tmp_path):
    path = tmp_path / "users.parquet"
    tables.users().to_parquet(path, index=False)
    loaded = load_table(path, "users")
    assert list(loaded.columns) == list(tables.users().columns)
    assert loaded["opt_in"].dtype == np.bool_


def test_load_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(PrivaggInputError, match=r"Fix: give a \.csv or \.parquet file"):
        (tmp_path / "cells.json").write_text("{}")
        load_table(tmp_path / "cells.json", "cells")
    with pytest.raises(PrivaggInputError, match="does not exist. Fix: check the path."):
        load_table(tmp_path / "nope.parquet", "cells")
