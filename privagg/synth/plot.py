"""Footfall heat map of a World: cells coloured by distinct subscribers at an hour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from privagg.world import World


def footfall_by_cell_hour(world: World) -> pd.DataFrame:
    """Distinct subscribers with an event per cell and hour: columns ``cell_id, hour, footfall``."""
    ev = world.events
    hour = ev["ts"].dt.floor("h")
    out = (
        pd.DataFrame({"cell_id": ev["cell_id"].to_numpy(), "hour": hour.to_numpy(), "user_id": ev["user_id"].to_numpy()})
        .drop_duplicates()
        .groupby(["cell_id", "hour"], sort=True)
        .size()
        .rename("footfall")
        .reset_index()
    )
    return out


def footfall_heatmap(world: World, path: str | Path, *, hour: pd.Timestamp | str | None = None) -> Path:
    """Write a PNG heat map of footfall (distinct subscribers per cell) at ``hour``.

    Without ``hour``, the busiest hour of the window is shown. The left panel
    shows the whole region, the right one the city core.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    ff = footfall_by_cell_hour(world)
    if hour is None:
        hour = ff.groupby("hour")["footfall"].sum().idxmax()
    hour = pd.Timestamp(hour).floor("h")
    at = ff[ff["hour"] == hour].set_index("cell_id")["footfall"]
    cells = world.cells
    value = at.reindex(cells["cell_id"]).fillna(0).to_numpy()
    x, y = cells["x"].to_numpy() / 1000, cells["y"].to_numpy() / 1000
    core = float(world.meta.get("city_size_m", 16_000)) / 2000

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), constrained_layout=True)
    norm = LogNorm(vmin=1, vmax=max(value.max(), 2))
    order = np.argsort(value)
    for ax, lim, title in ((axes[0], None, "region"), (axes[1], core * 1.1, "city core")):
        sc = ax.scatter(x[order], y[order], c=np.maximum(value[order], 1), s=14 if lim is None else 30,
                        cmap="inferno", norm=norm, edgecolors="none")
        stadium = world.meta.get("stadium_cell")
        if stadium is not None:
            ax.scatter([x[stadium]], [y[stadium]], marker="*", s=160, facecolors="none", edgecolors="tab:cyan",
                       label="stadium")
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("x (km)")
        ax.set_ylabel("y (km)")
        ax.set_title(f"{title}: distinct subscribers per cell")
    axes[1].legend(loc="lower right")
    fig.colorbar(sc, ax=axes, label="distinct subscribers with an event in the hour", shrink=0.85)
    fig.suptitle(f"Footfall at {hour:%a %Y-%m-%d %H:00} ({len(world.users):,} subscribers, {len(cells):,} cells)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
