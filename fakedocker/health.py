"""Health checks: ``State.Health`` of a container whose config has a
``Healthcheck``, probed by running its test command in the simulator.

Timing and bookkeeping are the engine's (Docker 20.10): the first probe runs
one interval after start, a probe that outlives its timeout counts as a
failure with exit -1, failures during the start period do not count, the
status turns unhealthy after ``Retries`` failures in a row, and the log
keeps the last five probes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._util import rfc3339_nano

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
LOG_ENTRIES = 5
MAX_OUTPUT = 4096

RunProbe = Callable[[list[str]], Awaitable[tuple[int, bytes, bytes]]]


def healthcheck_of(config: dict[str, Any]) -> dict[str, Any] | None:
    """The container's health check, or None (none set, or ``["NONE"]``)."""
    check = config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    return check


def probe_argv(test: list[str]) -> list[str]:
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return test[1:] if test[0] == "CMD" else test


def health_status(health: dict[str, Any] | None) -> str:
    """What the ``health`` list filter compares: starting, healthy, unhealthy or none."""
    return "none" if health is None else health["Status"]


def status_suffix(health: dict[str, Any] | None) -> str:
    """The part of the list's ``Status`` after "Up ...": " (healthy)" etc."""
    if health is None:
        return ""
    if health["Status"] == "starting":
        return " (health: starting)"
    return f" ({health['Status']})"


def _seconds(ns: int | None, default: float) -> float:
    return ns / 1e9 if ns else default


def new_health() -> dict[str, Any]:
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


async def run_checks(
    check: dict[str, Any], health: dict[str, Any], probe: RunProbe, changed: Callable[[str], None]
) -> None:
    """Probe until cancelled (the container stopped), updating ``health``."""
    interval = _seconds(check.get("Interval"), DEFAULT_INTERVAL)
    timeout = _seconds(check.get("Timeout"), DEFAULT_TIMEOUT)
    retries = check.get("Retries") or DEFAULT_RETRIES
    start_period = _seconds(check.get("StartPeriod"), 0.0)
    argv = probe_argv(list(check["Test"]))
    started = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        begin = time.time_ns()
        try:
            code, out, err = await asyncio.wait_for(probe(list(argv)), timeout)
            output = (out + err)[:MAX_OUTPUT].decode("utf-8", "replace")
        except asyncio.TimeoutError:
            code, output = -1, f"Health check exceeded timeout ({timeout:g}s)"
        entry = {"Start": rfc3339_nano(begin), "End": rfc3339_nano(time.time_ns()), "ExitCode": code, "Output": output}
        health["Log"] = (health["Log"] + [entry])[-LOG_ENTRIES:]
        before = health["Status"]
        if code == 0:
            health["Status"], health["FailingStreak"] = "healthy", 0
        elif not (before == "starting" and time.monotonic() - started < start_period):
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        if health["Status"] != before:
            changed(health["Status"])
