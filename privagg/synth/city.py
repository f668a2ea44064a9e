"""The synthetic city: cells (cell towers), their hierarchy, land use and road graph.

The region is a dense city core surrounded by satellite towns and a sparse
rural ring, because real subscribers commute in from the surrounding region
and sometimes travel far; a single uniform city gives a radius of gyration
with no tail. Cell density decays with distance from each centre, as real
cell-tower density does with population density.

- **core**: cells at a radial distance drawn from Gamma(2, r0) around the
  city centre (density ``exp(-r / r0)``), within ``city_size_m / 2``.
- **towns**: ``n_towns`` satellite towns 25-75 % of the way to the edge of
  the region, each a small dense cluster; town sizes are Zipf-distributed.
- **rural**: cells spread uniformly over the ring between the core and the
  edge of the region (``region_size_m / 2``).

Cells are grouped into districts of about ``zone_size * zones_per_district``
cells and districts into zones of about ``zone_size`` cells, by recursive
median bisection of positions (spatially compact groups of similar
population, like census areas); pieces a cut leaves disconnected from their
group join a neighbouring group, so every zone and district is connected in
the road graph. This gives the three-level hierarchy cell < zone < district. Edges are the Delaunay triangulation of the cell positions; their
travel time uses a speed that grows with edge length (streets in the centre,
roads and motorways between towns). All-pairs shortest-path travel times are
precomputed with :func:`scipy.sparse.csgraph.dijkstra`.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import Delaunay

from privagg.errors import PrivaggInputError
from privagg.schema import LAND_USES

REGIONS = ("core", "town", "rural")

RESIDENTIAL, OFFICE, RETAIL, TRANSPORT, LEISURE, STADIUM = range(6)
assert LAND_USES == ("residential", "office", "retail", "transport", "leisure", "stadium")


@dataclass(frozen=True)
class City:
    """A city's cells, road graph and precomputed travel times.

    Attributes
    ----------
    cells
        The ``cells`` table (see :mod:`privagg.schema`).
    graph
        networkx graph; nodes carry ``zone_id``, ``district_id``, ``x``, ``y``,
        ``land_use`` and ``region`` (core, town, rural); edges carry
        ``travel_time_s`` and ``distance_m``.
    x, y
        Cell positions in metres (city centre at 0, 0), indexed by cell id.
    land_use
        Land-use codes (index into :data:`privagg.schema.LAND_USES`).
    region
        Region codes (index into :data:`REGIONS`).
    travel_time_s
        ``(n, n)`` shortest-path travel times in seconds.
    predecessors
        ``(n, n)`` shortest-path predecessors (``predecessors[i, j]`` is the
        cell before ``j`` on the fastest path from ``i``; negative on the diagonal).
    distance_m
        ``(n, n)`` straight-line distances in metres.
    stadium_cell
        Id of the (first) stadium cell.
    """

    cells: pd.DataFrame
    graph: nx.Graph
    x: np.ndarray
    y: np.ndarray
    land_use: np.ndarray
    region: np.ndarray
    travel_time_s: np.ndarray
    predecessors: np.ndarray
    distance_m: np.ndarray
    stadium_cell: int

    @property
    def n_cells(self) -> int:
        return len(self.x)


def _edge_speed_mps(distance_m: np.ndarray) -> np.ndarray:
    """Speed on an edge: ~20 km/h for short urban edges, up to ~90 km/h for long roads."""
    kmh = 20.0 + 70.0 * (1.0 - np.exp(-distance_m / 8000.0))
    return kmh / 3.6


def _split_counts(n: int, shares: np.ndarray) -> np.ndarray:
    counts = np.floor(shares * n).astype(int)
    counts[0] += n - counts.sum()
    return counts


def _land_use_probabilities(region: np.ndarray, centrality: np.ndarray) -> np.ndarray:
    """Probability of each land use per cell, from its region and scaled distance to its centre."""
    n = len(region)
    p = np.zeros((n, len(LAND_USES)))
    c = centrality
    core = region == 0
    town = region == 1
    rural = region == 2
    p[core, OFFICE] = 0.55 * np.exp(-c[core] / 0.22) + 0.06
    p[core, RETAIL] = 0.22 * np.exp(-c[core] / 0.35) + 0.07
    p[core, TRANSPORT] = 0.04
    p[core, LEISURE] = 0.07
    p[town, OFFICE] = 0.25 * np.exp(-c[town] / 0.4) + 0.04
    p[town, RETAIL] = 0.2 * np.exp(-c[town] / 0.5) + 0.06
    p[town, TRANSPORT] = 0.02
    p[town, LEISURE] = 0.06
    p[rural, OFFICE] = 0.03
    p[rural, RETAIL] = 0.05
    p[rural, TRANSPORT] = 0.03
    p[rural, LEISURE] = 0.15
    p[:, RESIDENTIAL] = 1.0 - p.sum(axis=1)
    return p


def _bisect(idx: np.ndarray, x: np.ndarray, y: np.ndarray, max_size: float) -> list[np.ndarray]:
    """Split cells into spatially compact groups of at most ``max_size`` by recursive median bisection.

    Each split cuts a group in two equal halves across its longer side, so
    groups hold similar numbers of cells (cells follow population, so zones
    hold similar populations, like census areas).
    """
    groups, stack = [], [idx]
    while stack:
        g = stack.pop()
        if len(g) <= max_size:
            groups.append(g)
            continue
        gx, gy = x[g], y[g]
        coord = gx if np.ptp(gx) >= np.ptp(gy) else gy
        order = np.argsort(coord, kind="stable")
        half = len(g) // 2
        stack.extend([g[order[half:]], g[order[:half]]])
    return groups


def _make_contiguous(labels: np.ndarray, adj, parent: np.ndarray) -> np.ndarray:
    """Reassign cells so every group of ``labels`` is connected in the graph ``adj``.

    A group's smaller connected pieces join the neighbouring group (same
    ``parent``) they share most edges with. The largest piece stays, so the
    group stays connected; a piece joining a group by an edge keeps that one
    connected too.
    """
    labels = labels.copy()
    rows, cols = adj.nonzero()
    for _ in range(20):
        changed = False
        for lab in np.unique(labels):
            members = np.flatnonzero(labels == lab)
            n_comp, comp = connected_components(adj[members][:, members], directed=False)
            if n_comp == 1:
                continue
            largest = np.argmax(np.bincount(comp))
            for c in range(n_comp):
                if c == largest:
                    continue
                piece = members[comp == c]
                out = np.isin(rows, piece)
                nb = cols[out]
                nb = nb[(labels[nb] != lab) & (parent[nb] == parent[piece[0]])]
                if len(nb) == 0:
                    continue
                values, counts = np.unique(labels[nb], return_counts=True)
                labels[piece] = values[np.argmax(counts)]
                changed = True
        if not changed:
            break
    return labels


def build_city(
    n_cells: int = 600,
    *,
    city_size_m: float = 16_000.0,
    region_size_m: float = 120_000.0,
    core_share: float = 0.65,
    town_share: float = 0.25,
    n_towns: int = 6,
    zone_size: int = 9,
    zones_per_district: int = 6,
    seed: int | np.random.Generator = 0,
) -> City:
    """Build a synthetic city region.

    Parameters
    ----------
    n_cells
        Number of cells (cell towers), at least 20.
    city_size_m
        Diameter of the dense city core in metres.
    region_size_m
        Diameter of the whole region (core, satellite towns, rural ring) in metres.
    core_share, town_share
        Shares of the cells in the core and in the satellite towns; the rest are rural.
    n_towns
        Number of satellite towns.
    zone_size
        Target number of cells per zone.
    zones_per_district
        Target number of zones per district.
    seed
        Seed or generator; the same seed gives the same city.
    """
    if int(n_cells) != n_cells or n_cells < 20:
        raise PrivaggInputError(f"n_cells={n_cells!r}: too few cells. Fix: pass n_cells >= 20.")
    if not 0 < city_size_m < region_size_m:
        raise PrivaggInputError(
            f"city_size_m={city_size_m!r}, region_size_m={region_size_m!r}: the core must be smaller than "
            "the region. Fix: pass 0 < city_size_m < region_size_m."
        )
    if not (0 < core_share and 0 <= town_share and core_share + town_share <= 1):
        raise PrivaggInputError(
            f"core_share={core_share!r}, town_share={town_share!r}: invalid shares. "
            "Fix: pass core_share > 0, town_share >= 0 and core_share + town_share <= 1."
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_cells = int(n_cells)
    core_radius = city_size_m / 2
    region_radius = region_size_m / 2
    n_core, n_town, n_rural = _split_counts(n_cells, np.array([core_share, town_share, 1 - core_share - town_share]))
    if n_towns <= 0:
        n_core, n_town = n_core + n_town, 0

    # Core: radially decaying density.
    r0 = core_radius / 3.5
    r = np.minimum(rng.gamma(2.0, r0, n_core), core_radius * rng.uniform(0.8, 1.0, n_core))
    a = rng.uniform(0, 2 * np.pi, n_core)
    xs, ys = [r * np.cos(a)], [r * np.sin(a)]
    region = [np.zeros(n_core, dtype=np.int8)]
    centrality = [r / core_radius]

    # Satellite towns: Zipf-sized dense clusters in the surrounding region.
    town_centres = np.zeros((0, 2))
    if n_town:
        angles = np.linspace(0, 2 * np.pi, n_towns, endpoint=False) + rng.uniform(0, 2 * np.pi)
        angles = angles + rng.uniform(-0.3, 0.3, n_towns)
        dist = region_radius * rng.uniform(0.25, 0.75, n_towns)
        town_centres = np.column_stack([dist * np.cos(angles), dist * np.sin(angles)])
        sizes = 1.0 / np.arange(1, n_towns + 1)
        town_of = rng.choice(n_towns, size=n_town, p=sizes / sizes.sum())
        town_r0 = 700.0 * np.sqrt(sizes[town_of] * n_towns)
        tr = rng.gamma(2.0, town_r0)
        ta = rng.uniform(0, 2 * np.pi, n_town)
        xs.append(town_centres[town_of, 0] + tr * np.cos(ta))
        ys.append(town_centres[town_of, 1] + tr * np.sin(ta))
        region.append(np.ones(n_town, dtype=np.int8))
        centrality.append(tr / (4 * town_r0))

    # Rural ring: uniform over the area between the core and the edge.
    rr = np.sqrt(rng.uniform(core_radius**2, region_radius**2, n_rural))
    ra = rng.uniform(0, 2 * np.pi, n_rural)
    xs.append(rr * np.cos(ra))
    ys.append(rr * np.sin(ra))
    region.append(np.full(n_rural, 2, dtype=np.int8))
    centrality.append(np.ones(n_rural))

    x = np.concatenate(xs)
    y = np.concatenate(ys)
    region_arr = np.concatenate(region)
    centrality_arr = np.concatenate(centrality)

    # Land use.
    p = _land_use_probabilities(region_arr, centrality_arr)
    cdf = np.cumsum(p, axis=1)
    cdf[:, -1] = 1.0
    land_use = (rng.random(n_cells)[:, None] > cdf).sum(axis=1).astype(np.int8)
    points = np.column_stack([x, y])
    # Transport hubs at the centre of the city and of every town.
    for cx, cy in np.vstack([[0.0, 0.0], town_centres]):
        land_use[np.argmin((x - cx) ** 2 + (y - cy) ** 2)] = TRANSPORT
    # One stadium in the inner suburbs of the core.
    core_idx = np.flatnonzero(region_arr == 0)
    r_core = np.hypot(x[core_idx], y[core_idx])
    candidates = core_idx[(r_core > 0.25 * core_radius) & (r_core < 0.6 * core_radius) & (land_use[core_idx] != TRANSPORT)]
    if len(candidates) == 0:
        candidates = core_idx[land_use[core_idx] != TRANSPORT]
    stadium_cell = int(rng.choice(candidates))
    land_use[stadium_cell] = STADIUM

    # Road graph: Delaunay triangulation, travel time from a length-dependent speed.
    tri = Delaunay(points)
    s = tri.simplices
    pairs = np.vstack([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
    pairs.sort(axis=1)
    pairs = np.unique(pairs, axis=0)
    d = np.hypot(x[pairs[:, 0]] - x[pairs[:, 1]], y[pairs[:, 0]] - y[pairs[:, 1]])
    road = d * 1.2  # roads are not straight lines
    tt = road / _edge_speed_mps(road)
    adj = coo_matrix((tt, (pairs[:, 0], pairs[:, 1])), shape=(n_cells, n_cells)).tocsr()
    travel_time, predecessors = dijkstra(adj, directed=False, return_predecessors=True)
    dist_m = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])

    # Hierarchy: districts by recursive bisection of the cells, zones by bisection within each;
    # then pieces cut off from their group (across a sparse area) join a neighbouring group.
    sym = adj + adj.T
    district = np.empty(n_cells, dtype=np.int64)
    districts = _bisect(np.arange(n_cells), x, y, 1.5 * zone_size * zones_per_district)
    for d_id, members in enumerate(sorted(districts, key=lambda g: np.hypot(x[g], y[g]).mean())):
        district[members] = d_id
    district = _make_contiguous(district, sym, np.zeros(n_cells, dtype=np.int64))
    zone = np.empty(n_cells, dtype=np.int64)
    n_zones = 0
    for d_id in np.unique(district):
        for z in _bisect(np.flatnonzero(district == d_id), x, y, 1.5 * zone_size):
            zone[z] = n_zones
            n_zones += 1
    zone = _make_contiguous(zone, sym, district)
    _, zone = np.unique(zone, return_inverse=True)
    _, district = np.unique(district, return_inverse=True)

    cells = pd.DataFrame({
        "cell_id": np.arange(n_cells, dtype=np.int64),
        "zone_id": zone.astype(np.int64),
        "district_id": district.astype(np.int64),
        "x": x.astype(np.float64),
        "y": y.astype(np.float64),
        "land_use": np.asarray(LAND_USES)[land_use],
    })
    cells["land_use"] = cells["land_use"].astype(str)

    graph = nx.Graph()
    for i in range(n_cells):
        graph.add_node(
            i, zone_id=int(zone[i]), district_id=int(district[i]), x=float(x[i]), y=float(y[i]),
            land_use=LAND_USES[land_use[i]], region=REGIONS[region_arr[i]],
        )
    graph.add_edges_from(
        (int(u), int(v), {"travel_time_s": float(t), "distance_m": float(dd)})
        for u, v, t, dd in zip(pairs[:, 0], pairs[:, 1], tt, road)
    )
    return City(
        cells=cells, graph=graph, x=x, y=y, land_use=land_use, region=region_arr,
        travel_time_s=travel_time, predecessors=predecessors.astype(np.int32),
        distance_m=dist_m, stadium_cell=stadium_cell,
    )
