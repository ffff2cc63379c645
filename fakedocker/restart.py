"""Restart policies: whether the engine restarts a container that exited,
and after how long (Docker 20.10's restart manager, as pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
#: A run at least this long resets the delay to ``FIRST_DELAY``.
RESET_AFTER = 10.0


def should_restart(policy: Mapping[str, Any] | None, exit_code: int, restart_count: int, stopped: bool) -> bool:
    """``stopped``: the exit came from a stop (or kill) the user asked for."""
    name = (policy or {}).get("Name") or "no"
    if stopped or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = (policy or {}).get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def next_delay(previous: float, ran_seconds: float) -> float:
    """The wait before the next restart: doubling from 100 ms, capped at a
    minute, back to 100 ms after a run of ten seconds or more."""
    if not previous or ran_seconds >= RESET_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)
