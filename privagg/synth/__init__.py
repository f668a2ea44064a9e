"""privagg.synth: a synthetic operator's view of a city.

:func:`generate_world` builds a city region (a dense core, satellite towns and
a rural ring of cells, grouped into zones and districts, with land uses and a
road graph), draws subscribers (demographics, contract, home and work,
consent, segment tags) and simulates their movements (daily routines,
exploration and preferential return, shortest-path travel) into the five
tables of a :class:`~privagg.world.World`.

>>> from privagg.synth import generate_world, StadiumEvent
>>> world = generate_world(n_users=2_000, n_cells=200, days=7, seed=0,
...                        stadium_event=StadiumEvent(day=5, start_hour=18, end_hour=21))  # doctest: +SKIP

:mod:`privagg.synth.realism` measures the regularities real operator data
shows (unicity, visitation power law, radius of gyration, land-use rhythms).
"""

from privagg.synth.city import City, build_city
from privagg.synth.generate import DEFAULT_START, generate_world
from privagg.synth.mobility import MobilityParams, StadiumEvent, simulate_mobility
from privagg.synth.population import TAG_NAMES, Population, generate_population
from privagg.world import World

__all__ = [
    "City",
    "DEFAULT_START",
    "MobilityParams",
    "Population",
    "StadiumEvent",
    "TAG_NAMES",
    "World",
    "build_city",
    "generate_population",
    "generate_world",
    "simulate_mobility",
]
