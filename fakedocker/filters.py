"""The engine's validation of list filters (Docker 20.10), per API family.

A filter key the engine does not know, or a value it cannot parse, is a 400
"Invalid filter" there; a fake that ignored it would let a typo in a
downstream test pass (matching everything) where the engine refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from dockerspawner.engine.protocol import EngineError

KEYS: dict[str, frozenset[str]] = {
    "containers": frozenset(
        "ancestor before expose exited health id isolation is-task label name network publish since status volume".split()
    ),
    "volumes": frozenset({"dangling", "driver", "label", "name"}),
    "networks": frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"}),
}
STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited", "dead"})
HEALTH = frozenset({"starting", "healthy", "unhealthy", "none"})
BOOLEANS = frozenset({"true", "false", "1", "0"})


def check(family: str, wanted: Mapping[str, list[str]]) -> None:
    """Raise the engine's 400 for a filter of ``family`` it would refuse."""
    for key, values in wanted.items():
        if key not in KEYS[family]:
            raise EngineError(f"Invalid filter '{key}'", 400)
        if family == "containers" and key == "status":
            bad = [v for v in values if v not in STATUSES]
            if bad:
                raise EngineError(f"Invalid filter 'status={bad[0]}'", 400)
        if family == "containers" and key == "health":
            bad = [v for v in values if v not in HEALTH]
            if bad:
                raise EngineError(f"Unrecognised filter value for health: {bad[0]}", 400)
        if key == "dangling" and any(v.lower() not in BOOLEANS for v in values):
            raise EngineError(f"Invalid filter 'dangling=[{' '.join(values)}]'", 400)
