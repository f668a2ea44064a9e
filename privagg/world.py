"""The World: privagg's data model in one object.

A World bundles the cell graph and the five tables (``cells``, ``users``,
``events``, ``stays``, ``trips``; see :mod:`privagg.schema`). Synthetic worlds
come from :func:`privagg.synth.generate_world`; a user's own tables are loaded
with :meth:`World.load` or :meth:`World.from_tables`, and validated either way.

On disk a World is a directory of Parquet files, one per table, plus
``edges.parquet`` for the graph and ``world.json`` for its metadata. It is
written to a temporary sibling directory and renamed into place, so a reader
never sees half a World.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from privagg.atomic import publish_directory
from privagg.errors import PrivaggInputError
from privagg.schema import validate_table

TABLES = ("cells", "users", "events", "stays", "trips")
#: ``meta["window_source"]`` of a World whose window was derived from its data.
WINDOW_FROM_CONSENTING = "observed: midnight before the first to midnight after the last row of consenting subscribers"


def consenting_ids(users: pd.DataFrame) -> np.ndarray:
    """The ``user_id`` of every subscriber whose ``opt_in`` is True."""
    return users.loc[users["opt_in"].to_numpy(dtype=bool), "user_id"].to_numpy()
EDGE_COLUMNS = ("u", "v", "travel_time_s", "distance_m")


def graph_from_tables(cells: pd.DataFrame, edges: pd.DataFrame) -> nx.Graph:
    """Build the cell graph: one node per cell (with its attributes), one edge per row of ``edges``."""
    graph = nx.Graph()
    for row in cells.itertuples(index=False):
        graph.add_node(
            int(row.cell_id), zone_id=int(row.zone_id), district_id=int(row.district_id),
            x=float(row.x), y=float(row.y), land_use=str(row.land_use),
        )
    for u, v, t, d in edges[list(EDGE_COLUMNS)].itertuples(index=False):
        graph.add_edge(int(u), int(v), travel_time_s=float(t), distance_m=float(d))
    return graph


def edges_from_graph(graph: nx.Graph) -> pd.DataFrame:
    """The graph's edges as a table with columns ``u, v, travel_time_s, distance_m``."""
    rows = [
        (int(u), int(v), float(d.get("travel_time_s", 0.0)), float(d.get("distance_m", 0.0)))
        for u, v, d in graph.edges(data=True)
    ]
    return pd.DataFrame(rows, columns=list(EDGE_COLUMNS)).astype(
        {"u": "int64", "v": "int64", "travel_time_s": "float64", "distance_m": "float64"}
    )


@dataclass
class World:
    """A city's cell graph and its subscribers' data.

    Attributes
    ----------
    graph
        networkx graph of cells; nodes carry ``zone_id``, ``district_id``,
        ``x``, ``y``, ``land_use``; edges carry ``travel_time_s`` and ``distance_m``.
    cells, users, events, stays, trips
        Tables following :mod:`privagg.schema`.
    meta
        Free-form metadata: generator parameters, seed, ``start`` and ``end``
        of the observed window (ISO strings), scenario.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> summary = world.summary()
    >>> summary["cells"], summary["users"]
    (20, 60)
    >>> world.start, world.end
    (Timestamp('2026-01-05 00:00:00'), Timestamp('2026-01-06 00:00:00'))
    >>> list(world.stays.columns)
    ['user_id', 'cell_id', 'start', 'end']
    """

    graph: nx.Graph
    cells: pd.DataFrame
    users: pd.DataFrame
    events: pd.DataFrame
    stays: pd.DataFrame
    trips: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_tables(
        cls,
        cells: pd.DataFrame,
        users: pd.DataFrame,
        events: pd.DataFrame,
        stays: pd.DataFrame,
        trips: pd.DataFrame,
        *,
        edges: pd.DataFrame | None = None,
        meta: dict[str, Any] | None = None,
    ) -> World:
        """Validate the five tables and bundle them; without ``edges`` the graph has no edges."""
        validate_table(cells, "cells")
        for name, table in (("users", users), ("events", events), ("stays", stays), ("trips", trips)):
            validate_table(table, name, cells=cells)
        if edges is None:
            edges = pd.DataFrame({c: pd.Series(dtype="float64") for c in EDGE_COLUMNS})
        meta = dict(meta or {})
        if "start" not in meta or "end" not in meta:
            # From consenting subscribers' rows only: an opted-out subscriber's dates must not move the
            # window, which every release publishes.
            start, end = _observed_window(events, stays, trips, consenting_ids(users))
            meta.setdefault("start", start)
            meta.setdefault("end", end)
            meta.setdefault("window_source", WINDOW_FROM_CONSENTING)
        return cls(graph_from_tables(cells, edges), cells, users, events, stays, trips, meta)

    @property
    def start(self) -> pd.Timestamp:
        """Start of the observed window (midnight of the first day)."""
        return pd.Timestamp(self.meta["start"])

    @property
    def end(self) -> pd.Timestamp:
        """End of the observed window (exclusive)."""
        return pd.Timestamp(self.meta["end"])

    def opted_in(self) -> World:
        """The World restricted to subscribers with ``opt_in == True``.

        Releases call this before anything else: a subscriber without consent
        never reaches an aggregate.
        """
        consenting = self.users.loc[self.users["opt_in"].to_numpy(dtype=bool), "user_id"].to_numpy()

        def keep(df: pd.DataFrame) -> pd.DataFrame:
            return df.loc[df["user_id"].isin(consenting)].reset_index(drop=True)

        return replace(
            self,
            users=self.users.loc[self.users["opt_in"].to_numpy(dtype=bool)].reset_index(drop=True),
            events=keep(self.events), stays=keep(self.stays), trips=keep(self.trips),
        )

    def summary(self) -> dict[str, Any]:
        """Counts and window of the World, for printing."""
        return {
            "cells": len(self.cells),
            "zones": int(self.cells["zone_id"].nunique()),
            "districts": int(self.cells["district_id"].nunique()),
            "users": len(self.users),
            "opted_in": int(self.users["opt_in"].sum()),
            "events": len(self.events),
            "stays": len(self.stays),
            "trips": len(self.trips),
            "start": str(self.start),
            "end": str(self.end),
        }

    def save(self, directory: str | Path) -> Path:
        """Write the World as Parquet files into ``directory``, atomically.

        An existing World in ``directory`` is replaced only once the new one
        is completely written.
        """
        target = Path(directory)

        def write(staging: Path) -> None:
            for name in TABLES:
                getattr(self, name).to_parquet(staging / f"{name}.parquet", index=False)
            edges_from_graph(self.graph).to_parquet(staging / "edges.parquet", index=False)
            (staging / "world.json").write_text(json.dumps(self.meta, indent=2, default=str))

        publish_directory(target, write)
        return target

    @classmethod
    def load(cls, directory: str | Path, *, validate: bool = True) -> World:
        """Read a World written by :meth:`save` (or a directory of the five tables as Parquet or CSV)."""
        from privagg.schema import load_table

        source = Path(directory)
        if source.is_file():
            raise PrivaggInputError(
                f"data {str(source)!r} is a file, not a directory. Fix: pass the folder holding cells, users, events, "
                "stays and trips (as .parquet or .csv), e.g. the one written by `privagg synth`."
            )
        if not source.is_dir():
            raise PrivaggInputError(
                f"data directory {str(source)!r} does not exist. "
                "Fix: pass a directory written by `privagg synth` or holding cells, users, events, stays and trips as .parquet or .csv."
            )

        def find(name: str) -> Path:
            for suffix in (".parquet", ".csv"):
                if (source / f"{name}{suffix}").exists():
                    return source / f"{name}{suffix}"
            raise PrivaggInputError(
                f"data directory {str(source)!r} has no table '{name}'. "
                f"Fix: add {name}.parquet or {name}.csv."
            )

        if validate:
            cells = load_table(find("cells"), "cells")
            tables = {name: load_table(find(name), name, cells=cells) for name in TABLES[1:]}
        else:
            cells = pd.read_parquet(find("cells"))
            tables = {name: pd.read_parquet(find(name)) for name in TABLES[1:]}
        edges_path = source / "edges.parquet"
        edges = _read_edges(edges_path) if edges_path.exists() else None
        meta_path = source / "world.json"
        meta = _read_meta(meta_path) if meta_path.exists() else None
        if validate:
            return cls.from_tables(cells, edges=edges, meta=meta, **tables)
        return cls(graph_from_tables(cells, edges if edges is not None else pd.DataFrame(columns=list(EDGE_COLUMNS))),
                   cells, meta=meta or {}, **tables)


def _read_edges(path: Path) -> pd.DataFrame:
    try:
        edges = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise PrivaggInputError(
            f"{str(path)!r} is not a readable Parquet file ({type(exc).__name__}). Fix: remove it (the graph then "
            "has no edges) or write the World again."
        ) from None
    missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise PrivaggInputError(f"{str(path)!r} lacks the column(s) {missing}. Fix: give it the columns {', '.join(EDGE_COLUMNS)}.")
    return edges


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError
        for key in ("start", "end"):
            if key in meta:
                pd.Timestamp(meta[key])
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise PrivaggInputError(
            f"{str(path)!r} is not a World's metadata (a JSON object whose start and end are timestamps). "
            "Fix: remove it to derive the window from consenting subscribers' rows, or write the World again."
        ) from None
    return meta


def _observed_window(events: pd.DataFrame, stays: pd.DataFrame, trips: pd.DataFrame,
                     consenting: np.ndarray | None = None) -> tuple[str, str]:
    """Midnight before the first timestamp and midnight after the last (of ``consenting`` subscribers' rows
    only, if given), as ISO strings."""
    firsts, lasts = [], []
    for table, first, last in ((events, "ts", "ts"), (stays, "start", "end"), (trips, "depart", "arrive")):
        if consenting is not None:
            table = table.loc[table["user_id"].isin(consenting)]
        if len(table):
            firsts.append(table[first].min())
            lasts.append(table[last].max())
    if not firsts:
        raise PrivaggInputError(
            "the World holds no events, stays or trips of consenting subscribers (opt_in == True), so its time "
            "window is unknown. Fix: pass meta={'start': ..., 'end': ...} (on the command line --start and --end) or add data."
        )
    start = pd.Timestamp(min(firsts)).floor("D")
    end = pd.Timestamp(max(lasts)).floor("D") + pd.Timedelta(days=1)
    return start.isoformat(), end.isoformat()
