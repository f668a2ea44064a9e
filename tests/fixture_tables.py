"""Tiny hand-made tables that follow privagg's schemas, for tests that need exact control."""

from __future__ import annotations

import pandas as pd


def cells() -> pd.DataFrame:
    return pd.DataFrame({
        "cell_id": [0, 1, 2, 3],
        "zone_id": [0, 0, 1, 1],
        "district_id": [0, 0, 0, 0],
        "x": [0.0, 500.0, 1000.0, 1500.0],
        "y": [0.0, 0.0, 0.0, 0.0],
        "land_use": ["residential", "office", "retail", "stadium"],
    })


def users() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [10, 11, 12],
        "age_band": ["18-24", "35-44", "65+"],
        "gender": ["female", "male", "female"],
        "contract": ["prepaid", "postpaid", "postpaid"],
        "arpu": [12.5, 40.0, 25.0],
        "device_tier": ["basic", "premium", "mid"],
        "home_cell": [0, 0, 2],
        "work_cell": [1, 1, 2],
        "opt_in": [True, True, False],
        "tag_sports": [True, False, False],
    })


def _ts(*values: str) -> pd.Series:
    return pd.to_datetime(pd.Series(values))


def events() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [10, 10, 11, 12],
        "cell_id": [0, 1, 1, 2],
        "ts": _ts("2026-01-05 08:10", "2026-01-05 09:30", "2026-01-05 09:45", "2026-01-05 10:00"),
    })


def stays() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [10, 10, 11, 12],
        "cell_id": [0, 1, 1, 2],
        "start": _ts("2026-01-05 00:00", "2026-01-05 09:00", "2026-01-05 09:30", "2026-01-05 00:00"),
        "end": _ts("2026-01-05 08:30", "2026-01-05 17:00", "2026-01-05 18:00", "2026-01-05 23:59"),
    })


def trips() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [10, 11],
        "origin_cell": [0, 0],
        "destination_cell": [1, 1],
        "depart": _ts("2026-01-05 08:30", "2026-01-05 09:00"),
        "arrive": _ts("2026-01-05 09:00", "2026-01-05 09:30"),
    })


def all_tables() -> dict[str, pd.DataFrame]:
    return {"cells": cells(), "users": users(), "events": events(), "stays": stays(), "trips": trips()}
