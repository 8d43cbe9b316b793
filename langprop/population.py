"""The population of candidate policies, their priorities and their lineage.

A policy's *priority* is what LangProp ranks by: an average of its scores that forgets old batches
at a rate set by the decay ``d`` (see :class:`PriorityTracker`). A :class:`Population` holds one
tracker per named score stream (e.g. ``train`` and ``val``) for every policy; its priority is the
sum over trackers. ``rerank`` sorts by priority with seeded random tie-breaking and keeps the best
``max_keep``. Every policy ever added keeps a lineage record (parent, generation, model, prompt and
response files), so the history of a lineage survives eviction.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langprop.policy import Policy, make_policy_id

__all__ = ["PriorityTracker", "Population"]


@dataclass
class PriorityTracker:
    """Running priority of one policy on one score stream.

    On each score ``s``::

        count += 1
        avg   += (s - avg) / count                       # mean of the current batch
        priority = (past_priority * past_weight + avg * count) / (past_weight + count)

    and on :meth:`reset` (end of a batch) with decay ``d``::

        past_weight   = (past_weight + count) * d
        past_priority = priority
        count, avg    = 0, 0.0

    So ``d = 1`` gives the cumulative mean over every score ever seen, ``d = 0`` the mean of the
    current batch only (the previous priority is kept until the first new score arrives), and
    ``0 < d < 1`` weights earlier batches by ``d`` per batch elapsed. A new tracker has priority 0.
    """

    decay: float = 0.0
    priority: float = 0.0
    count: int = 0
    avg: float = 0.0
    past_priority: float = 0.0
    past_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {self.decay}")

    def update(self, score: float) -> None:
        score = float(score)
        self.count += 1
        self.avg += (score - self.avg) / self.count
        self.priority = (self.past_priority * self.past_weight + self.avg * self.count) / (
            self.past_weight + self.count
        )

    def reset(self) -> None:
        self.past_weight = (self.past_weight + self.count) * self.decay
        self.past_priority = self.priority
        self.count = 0
        self.avg = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "priority": self.priority,
            "count": self.count,
            "avg": self.avg,
            "past_priority": self.past_priority,
            "past_weight": self.past_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriorityTracker:
        return cls(
            decay=float(data["decay"]),
            priority=float(data["priority"]),
            count=int(data["count"]),
            avg=float(data["avg"]),
            past_priority=float(data["past_priority"]),
            past_weight=float(data["past_weight"]),
        )


def _rng_state_to_json(state: tuple) -> list:
    # The 625 32-bit words as one hex string keep checkpoint indexes short and readable.
    version, internal, gauss = state
    return [version, "".join(f"{word:08x}" for word in internal), gauss]


def _rng_state_from_json(data: Sequence) -> tuple:
    version, internal, gauss = data
    if isinstance(internal, str):
        internal = [int(internal[i : i + 8], 16) for i in range(0, len(internal), 8)]
    return (version, tuple(internal), gauss)


class Population:
    """Candidate policies in rank order, with trackers, eviction and lineage.

    Typical step: ``record`` scores for every policy, ``rerank()`` (evicts beyond ``max_keep``),
    ``top(n_top_choices)`` to pick parents, ``add`` their children (which start with all trackers
    at 0 and inherit nothing), record the children's scores, ``rerank()`` again, checkpoint, and
    ``reset_trackers()`` at the end of the batch.

    Tie-breaking uses the population's own ``random.Random(seed)``, whose state is part of
    :meth:`state_dict`, so the same seed and the same calls give the same order, and a resumed
    run continues exactly.
    """

    def __init__(
        self,
        tracker_names: Sequence[str] = ("train",),
        decay: float = 0.0,
        max_keep: int = 4,
        seed: int = 0,
    ) -> None:
        if not tracker_names:
            raise ValueError("Population needs at least one tracker name")
        if len(set(tracker_names)) != len(tracker_names):
            raise ValueError(f"duplicate tracker names: {list(tracker_names)}")
        if max_keep < 1:
            raise ValueError(f"max_keep must be >= 1, got {max_keep}")
        PriorityTracker(decay=decay)  # validates decay
        self.tracker_names: tuple[str, ...] = tuple(tracker_names)
        self.decay = float(decay)
        self.max_keep = int(max_keep)
        self.seed = int(seed)
        self._rng = random.Random(self.seed)
        self._order: list[str] = []
        self._policies: dict[str, Policy] = {}
        self._trackers: dict[str, dict[str, PriorityTracker]] = {}
        self._lineage: dict[str, dict[str, Any]] = {}
        self._next_index = 0

    # -- membership -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, policy_id: object) -> bool:
        return policy_id in self._policies

    def __iter__(self):
        return iter(self.policies)

    @property
    def policies(self) -> list[Policy]:
        """Live policies in rank order (as of the last ``rerank``; new ones are appended)."""
        return [self._policies[pid] for pid in self._order]

    @property
    def ids(self) -> list[str]:
        return list(self._order)

    def get(self, policy_id: str) -> Policy:
        try:
            return self._policies[policy_id]
        except KeyError:
            raise KeyError(f"no policy {policy_id!r} in the population") from None

    def new_id(self, generation: int) -> str:
        """A fresh id like ``g003_0007``; the counter is part of the state, so ids never repeat."""
        while True:
            candidate = make_policy_id(generation, self._next_index)
            self._next_index += 1
            if candidate not in self._lineage:
                return candidate

    def add(self, policy: Policy) -> None:
        """Add a policy with fresh trackers (priority 0; children inherit nothing)."""
        if policy.id in self._policies or policy.id in self._lineage:
            raise ValueError(f"policy id {policy.id!r} was already used in this population")
        self._policies[policy.id] = policy
        self._order.append(policy.id)
        self._trackers[policy.id] = {name: PriorityTracker(decay=self.decay) for name in self.tracker_names}
        record = policy.lineage()
        record.update(alive=True, last_priority=0.0, evicted_step=None)
        self._lineage[policy.id] = record

    def remove(self, policy_id: str) -> Policy:
        policy = self.get(policy_id)
        self._order.remove(policy_id)
        del self._policies[policy_id]
        del self._trackers[policy_id]
        self._lineage[policy_id]["alive"] = False
        return policy

    # -- scores and priorities -----------------------------------------------------------------
    def tracker(self, tracker_name: str, policy_id: str) -> PriorityTracker:
        trackers = self._trackers.get(policy_id)
        if trackers is None:
            raise KeyError(f"no policy {policy_id!r} in the population")
        if tracker_name not in trackers:
            raise KeyError(f"unknown tracker {tracker_name!r}; this population has {list(self.tracker_names)}")
        return trackers[tracker_name]

    def record(self, tracker_name: str, policy_id: str, score: float) -> None:
        self.tracker(tracker_name, policy_id).update(score)

    def record_many(self, tracker_name: str, policy_id: str, scores: Iterable[float]) -> None:
        tracker = self.tracker(tracker_name, policy_id)
        for score in scores:
            tracker.update(score)

    def priority(self, policy_id: str) -> float:
        """Sum of the policy's priorities over all trackers."""
        if policy_id not in self._trackers:
            raise KeyError(f"no policy {policy_id!r} in the population")
        return sum(t.priority for t in self._trackers[policy_id].values())

    def priorities(self) -> dict[str, float]:
        """``{id: priority}`` in rank order."""
        return {pid: self.priority(pid) for pid in self._order}

    def reset_trackers(self) -> None:
        """End of a batch: apply the decay to every tracker of every live policy."""
        for trackers in self._trackers.values():
            for tracker in trackers.values():
                tracker.reset()

    # -- ranking -------------------------------------------------------------------------------
    def rerank(self, step: int | None = None) -> list[Policy]:
        """Sort by priority (highest first), ties broken by the seeded RNG; keep ``max_keep``.

        NaN priorities rank last. Returns the evicted policies (best first); their lineage records
        remain, marked not alive, with ``evicted_step`` set to ``step``.
        """
        tie_keys = {pid: self._rng.random() for pid in self._order}

        def key(pid: str) -> tuple[float, float]:
            value = self.priority(pid)
            return (-math.inf if math.isnan(value) else value, tie_keys[pid])

        self._order.sort(key=key, reverse=True)
        for pid in self._order:
            self._lineage[pid]["last_priority"] = self.priority(pid)
        evicted = [self.remove(pid) for pid in list(self._order[self.max_keep :])]
        for policy in evicted:
            self._lineage[policy.id]["evicted_step"] = step
        return evicted

    def top(self, n: int) -> list[Policy]:
        """The first ``n`` policies in rank order."""
        return self.policies[: max(0, n)]

    # -- lineage -------------------------------------------------------------------------------
    @property
    def lineage(self) -> dict[str, dict[str, Any]]:
        """Lineage record of every policy ever added (copy), keyed by id, in insertion order."""
        return {pid: copy.deepcopy(rec) for pid, rec in self._lineage.items()}

    def annotate(self, policy_id: str, **notes: Any) -> None:
        """Attach JSON-able notes (e.g. ``score=0.3, main_failure="IndexError on 4x4"``) to a lineage
        record; they survive eviction and checkpoints, so update prompts can show a lineage's history."""
        if policy_id not in self._lineage:
            raise KeyError(f"no policy {policy_id!r} was ever in the population")
        self._lineage[policy_id].setdefault("notes", {}).update(notes)

    def ancestors(self, policy_id: str) -> list[dict[str, Any]]:
        """Lineage records of the parent, grandparent, ... (nearest first), as far as known."""
        if policy_id not in self._lineage:
            raise KeyError(f"no policy {policy_id!r} was ever in the population")
        chain: list[dict[str, Any]] = []
        seen = {policy_id}
        parent = self._lineage[policy_id].get("parent_id")
        while parent is not None and parent in self._lineage and parent not in seen:
            seen.add(parent)
            chain.append(copy.deepcopy(self._lineage[parent]))
            parent = self._lineage[parent].get("parent_id")
        return chain

    # -- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; ``load_state_dict`` restores it exactly (RNG included)."""
        return {
            "tracker_names": list(self.tracker_names),
            "decay": self.decay,
            "max_keep": self.max_keep,
            "seed": self.seed,
            "rng_state": _rng_state_to_json(self._rng.getstate()),
            "next_index": self._next_index,
            "order": list(self._order),
            "policies": {pid: self._policies[pid].to_dict() for pid in self._order},
            "trackers": {
                pid: {name: t.to_dict() for name, t in self._trackers[pid].items()} for pid in self._order
            },
            "lineage": self.lineage,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.tracker_names = tuple(state["tracker_names"])
            self.decay = float(state["decay"])
            self.max_keep = int(state["max_keep"])
            self.seed = int(state["seed"])
            self._rng = random.Random()
            self._rng.setstate(_rng_state_from_json(state["rng_state"]))
            self._next_index = int(state["next_index"])
            order = list(state["order"])
            self._policies = {pid: Policy.from_dict(state["policies"][pid]) for pid in order}
            self._trackers = {
                pid: {name: PriorityTracker.from_dict(state["trackers"][pid][name]) for name in self.tracker_names}
                for pid in order
            }
            self._lineage = {pid: copy.deepcopy(rec) for pid, rec in state["lineage"].items()}
            self._order = order
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid population state: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Population:
        population = cls()
        population.load_state_dict(state)
        return population
