"""Small helpers shared by the fake daemon's modules: ids, clocks, the engine's
time and duration formats, image references and docker-py style filters."""

from __future__ import annotations

import re
import secrets
import shlex
import string
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from dockerspawner.engine.labels import labels_match  # noqa: F401 - shared with the fake's filters

#: What the engine prints for a time that never happened.
ZERO_TIME = "0001-01-01T00:00:00Z"

_B36 = string.digits + string.ascii_lowercase


def new_id() -> str:
    """64 hex characters, like container, network and exec ids."""
    return secrets.token_hex(32)


def swarm_id() -> str:
    """25 lowercase base-36 characters, like swarm object ids."""
    return "".join(secrets.choice(_B36) for _ in range(25))


def now_ns() -> int:
    return time.time_ns()


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano``: trailing zeros of the fraction are dropped."""
    if ns <= 0:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{frac:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def rfc3339_seconds(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``, which the engine uses for ``Status``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def command_string(argv: Iterable[str]) -> str:
    """The list's ``Command`` column: arguments quoted the way the engine does."""
    return " ".join(a if a and not re.search(r"[^\w@%+=:,./-]", a) else shlex.quote(a) for a in argv)


# -- image references ---------------------------------------------------------------


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> (repo, tag, digest); a registry's ``host:port``
    is part of the repository, not a tag."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
    return ref, tag, digest


def normalize_ref(ref: str) -> str:
    """``repo`` -> ``repo:latest``; digests and explicit tags stay."""
    repo, tag, digest = split_ref(ref)
    if digest:
        return f"{repo}@{digest}"
    return f"{repo}:{tag or 'latest'}"


def repo_path(repo: str) -> str:
    """The repository without its registry, as in ``Pulling from <path>``."""
    first, _, rest = repo.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    if "/" not in repo:
        return f"library/{repo}"
    return repo


VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


# -- filters -------------------------------------------------------------------------


def normalize_filters(filters: dict[str, Any] | None) -> dict[str, list[str]]:
    """The lists of strings the engine sees for docker-py's ``filters``:
    a bool becomes "true"/"false", a list keeps its items (as strings), any
    other value (a dict too) becomes one item, ``str(value)``."""
    out: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        items = value if isinstance(value, list) else [value]
        out[key] = [item if isinstance(item, str) else str(item) for item in items]
    return out


def env_dict(env: Iterable[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in env or []:
        k, _, v = line.partition("=")
        out[k] = v
    return out


# -- errors ----------------------------------------------------------------------------

def error_500(message: str) -> Exception:
    """A 500 the engine answers, typed as the real backend types it."""
    from dockerspawner.engine.protocol import classify_500

    return classify_500(message)
