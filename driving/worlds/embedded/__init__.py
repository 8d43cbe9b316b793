"""The embedded world: SUMO traffic, lights and pedestrians, our kinematic ego, no CARLA server.

>>> with EmbeddedWorld(EmbeddedWorldConfig(town="grid_tls")) as world:
...     scene = world.reset(route, seed=0)
...     scene = world.step(VehicleControl(throttle=0.5))
...     truth = world.tick()
"""

from driving.worlds.embedded.ego import EgoParams, EgoVehicle
from driving.worlds.embedded.session import EmbeddedWorldError
from driving.worlds.embedded.world import EmbeddedWorld, EmbeddedWorldConfig

__all__ = ["EgoParams", "EgoVehicle", "EmbeddedWorld", "EmbeddedWorldConfig", "EmbeddedWorldError"]
