"""What the engine refuses before a container runs, as pure checks of plain data.

``create_error`` is the daemon's HostConfig validation at create (400);
``device_error`` and ``executable_error`` are what the runtime refuses at
start. Each returns the engine's message (Docker 20.10), or None when the
engine would go on, so the caller decides the status and the state left
behind.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping
from typing import Any

RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
MIN_MEMORY = 6 * 1024 * 1024

#: ``FakeDocker(device_drivers=...)`` when a GPU host is simulated: the
#: capabilities the NVIDIA container toolkit registers with dockerd.
NVIDIA = {"nvidia": frozenset({"gpu", "nvidia", "compute", "compat32", "graphics", "utility", "video", "display"})}


def create_error(hc: Mapping[str, Any]) -> str | None:
    """The daemon's verdict on a create's HostConfig (status 400)."""
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in RESTART_POLICIES:
        return f"invalid restart policy '{name}'"
    if name in ("always", "unless-stopped") and policy.get("MaximumRetryCount"):
        return f"maximum retry count cannot be used with restart policy '{name}'"
    if (policy.get("MaximumRetryCount") or 0) < 0:
        return "maximum retry count cannot be negative"
    if hc.get("AutoRemove") and name not in ("", "no"):
        return "can't create 'AutoRemove' container with restart policy"
    memory = hc.get("Memory") or 0
    if 0 < memory < MIN_MEMORY:
        return "Minimum memory limit allowed is 6MB"
    if hc.get("NanoCpus"):
        if hc.get("CpuPeriod"):
            return "Conflicting options: Nano CPUs and CPU Period cannot both be set"
        if hc.get("CpuQuota"):
            return "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
    quota = hc.get("CpuQuota") or 0
    if 0 < quota < 1000:
        return "CPU cfs quota can not be less than 1ms (i.e. 1000)"
    period = hc.get("CpuPeriod") or 0
    if period and not 1000 <= period <= 1_000_000:
        return "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
    return None


def device_error(requests: Iterable[Mapping[str, Any]] | None, drivers: Mapping[str, Iterable[str]]) -> str | None:
    """A device request no driver of this host can serve (status 500 at start).

    A request names a driver, or leaves it empty and lets the engine pick the
    first driver that has one of its capability sets."""
    for req in requests or []:
        wanted = [list(s) for s in (req.get("Capabilities") or [])]
        driver = req.get("Driver") or ""
        candidates = [driver] if driver else list(drivers)
        ok = any(
            name in drivers and any(set(s) <= set(drivers[name]) for s in wanted or [[]])
            for name in candidates
        )
        if not ok:
            shown = "[" + " ".join("[" + " ".join(s) + "]" for s in wanted) + "]"
            return f'could not select device driver "{driver}" with capabilities: {shown}'
    return None


def executable_error(
    argv0: str, env_path: str, exists: Callable[[str], bool], known: Callable[[str], bool]
) -> str | None:
    """runc's refusal of a PID 1 that is not in the image (status 400 at start).

    ``known(name)`` says the fake can run it (a simulated program, or the
    image's own command); ``exists(path)`` whether the image has that file."""
    if known(argv0):
        return None
    prefix = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
    if "/" in argv0:
        if exists(posixpath.normpath(argv0)):
            return None
        return f'{prefix}exec: "{argv0}": stat {argv0}: no such file or directory: unknown'
    if any(exists(posixpath.join(d, argv0)) for d in env_path.split(":") if d):
        return None
    return f'{prefix}exec: "{argv0}": executable file not found in $PATH: unknown'
