"""Towns for the embedded world: SUMO-generated networks converted to OpenDRIVE, cached on disk.

>>> town = get_town("grid_tls")          # builds once (about a second), then reads the cache
>>> cmap = town.load_map()               # carla.Map over the town's OpenDRIVE
"""

from driving.towns.build import TownBuildError
from driving.towns.spec import BUILTIN_TOWNS, TownSpec, TownSpecError
from driving.towns.stops import StopApproach
from driving.towns.town import Town, UnknownTownError, default_cache_dir, get_town

__all__ = [
    "BUILTIN_TOWNS",
    "StopApproach",
    "Town",
    "TownBuildError",
    "TownSpec",
    "TownSpecError",
    "UnknownTownError",
    "default_cache_dir",
    "get_town",
]
