"""CollisionTest: oriented-box contacts between the ego and every other actor, deduplicated like
scenario_runner's collision sensor callback.

Every tick in which the ego's box overlaps an actor's box is one "sensor event" (CARLA's collision
sensor also reports on every physics step of a contact); the filters then decide whether it counts:

- 1.0: ignore the same actor id within 5 s of the last counted collision; ignore any contact
  within 3 m of a remembered collision location (remembered until the ego is more than 5 m away).
- 2.x: ignore the same actor id within 5 s; ignore any contact within 5 m of the last counted
  collision location (forgotten once the ego is more than 5 m away); ignore contacts while the ego
  moves slower than 0.1 m/s (not its fault).

Classification follows the type id: static props -> collisions_layout, vehicles ->
collisions_vehicle, pedestrians -> collisions_pedestrian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from driving.criteria.events import (
    COLLISION_LAYOUT,
    COLLISION_PEDESTRIAN,
    COLLISION_VEHICLE,
    CriteriaParams,
    InfractionEvent,
    location_text,
)
from driving.geometry import boxes_to_array, obb_overlap
from driving.types import ActorBox, WorldTick

# CARLA-like type ids written in the event messages (the leaderboard prints event.other_actor.type_id)
TYPE_IDS = {"vehicle": "vehicle.sumo.car", "pedestrian": "walker.pedestrian.sumo", "static": "static.prop.box"}
KIND_OF = {"vehicle": COLLISION_VEHICLE, "pedestrian": COLLISION_PEDESTRIAN, "static": COLLISION_LAYOUT}


class CollisionCriterion:
    """Counts ego collisions per the leaderboard's CollisionTest (see the module docstring)."""

    def __init__(self, params: CriteriaParams) -> None:
        self.p = params
        self._last_id: int | None = None
        self._last_time: float | None = None
        self._locations: list[tuple[float, float]] = []  # 2.x keeps at most one

    def update(self, tick: WorldTick, candidates: Sequence[ActorBox] | None = None) -> list[InfractionEvent]:
        """``candidates``: the actors that may touch the ego (all of ``tick.actors`` if None)."""
        actors = tick.actors if candidates is None else candidates
        return self.update_candidates(tick, [a.id for a in actors], [a.kind for a in actors],
                                      boxes_to_array(actors))

    def update_candidates(self, tick: WorldTick, ids: Sequence[int], kinds: Sequence[str],
                          boxes: np.ndarray) -> list[InfractionEvent]:
        """``update`` on candidates given as ids, kinds and an ``(M, 5)`` array of their boxes
        (``x, y, yaw_deg, half_length, half_width``), in the actors' order."""
        ego = tick.ego
        events: list[InfractionEvent] = []
        if len(ids):
            hits = obb_overlap((ego.x, ego.y, ego.yaw, ego.half_length, ego.half_width), boxes)
            for k in np.flatnonzero(hits).tolist():
                event = self._on_contact(tick, ids[k], kinds[k])
                if event is not None:
                    events.append(event)
        self._forget(tick)
        return events

    def _on_contact(self, tick: WorldTick, actor_id: int, actor_kind: str) -> InfractionEvent | None:
        ego = tick.ego
        if self._last_id is not None and self._last_id == actor_id:
            return None
        for lx, ly in self._locations:
            if math.hypot(ego.x - lx, ego.y - ly) <= self.p.collision_radius:
                return None
        if self.p.collision_min_speed > 0 and abs(ego.speed) < self.p.collision_min_speed:
            return None
        kind = KIND_OF.get(actor_kind)
        if kind is None:
            return None
        self._last_time = tick.time
        if self.p.version == "1.0":
            self._locations.append((ego.x, ego.y))
        else:
            self._locations = [(ego.x, ego.y)]
        if actor_id != 0:  # id 0 is CARLA's map layout: never remembered by id
            self._last_id = actor_id
        type_id = TYPE_IDS.get(actor_kind, actor_kind)
        return InfractionEvent(
            kind=kind, frame=tick.frame, time=tick.time, x=ego.x, y=ego.y, actor_id=actor_id,
            message=f"Agent collided against object with type={type_id} and id={actor_id} at "
            f"{location_text(ego.x, ego.y)}",
        )

    def _forget(self, tick: WorldTick) -> None:
        ego = tick.ego
        self._locations = [
            (lx, ly) for lx, ly in self._locations
            if math.hypot(ego.x - lx, ego.y - ly) <= self.p.collision_forget_radius
        ]
        if (self._last_id is not None and self._last_time is not None
                and tick.time - self._last_time > self.p.collision_id_time):
            self._last_id = None
