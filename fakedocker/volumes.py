"""Named and anonymous volumes, each with its own file tree."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dockerspawner.engine.protocol import EngineError, NotFound

from ._util import labels_match, now_ns, rfc3339_seconds
from .fs import FileStore

_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class Volume:
    name: str
    driver: str = "local"
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    anonymous: bool = False
    created_ns: int = field(default_factory=now_ns)
    store: FileStore = field(default_factory=FileStore)

    def inspect(self) -> dict[str, Any]:
        return {
            "CreatedAt": rfc3339_seconds(self.created_ns),
            "Driver": self.driver,
            "Labels": dict(self.labels) if self.labels else None,
            "Mountpoint": f"/var/lib/docker/volumes/{self.name}/_data",
            "Name": self.name,
            "Options": dict(self.options) if self.options else None,
            "Scope": "local",
        }


class Volumes:
    def __init__(self) -> None:
        self.by_name: dict[str, Volume] = {}

    def create(
        self,
        name: str,
        *,
        driver: str | None = None,
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> tuple[Volume, bool]:
        """Returns (volume, created); an existing name is returned as is,
        as the engine does."""
        existing = self.by_name.get(name)
        if existing is not None:
            return existing, False
        if not _VOLUME_NAME.match(name):
            raise EngineError(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path",
                400,
            )
        vol = Volume(
            name=name,
            driver=driver or "local",
            labels=dict(labels) if labels else None,
            options=dict(driver_opts) if driver_opts else None,
            anonymous=anonymous,
        )
        self.by_name[name] = vol
        return vol, True

    def get(self, name: str) -> Volume:
        vol = self.by_name.get(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def matches(self, vol: Volume, filters: dict[str, list[str]], in_use: bool) -> bool:
        for key, values in filters.items():
            if key == "name":
                if not any(re.search(v, vol.name) for v in values):
                    return False
            elif key == "label":
                if not labels_match(vol.labels, values):
                    return False
            elif key == "dangling":
                want = values[0].lower() in ("true", "1")
                if want == in_use:
                    return False
            elif key == "driver":
                if vol.driver not in values:
                    return False
        return True
