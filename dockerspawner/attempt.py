"""One start of one server, as one object.

Everything a start learns (the image it resolved, its inspect, the limits it
evaluated) and everything it creates lives here, not on the spawner, so a
failed or cancelled start can undo exactly what it made and a later start
begins clean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Undo = Callable[[], Awaitable[Any]]


@dataclass
class StartAttempt:
    """Phase, findings and an undo stack for one ``start()``."""

    phase: str = "preparing"
    image: str = ""
    image_info: dict | None = None
    mem_limit: int | None = None
    cpu_limit: float | None = None
    started_info: dict | None = None
    spec: dict | None = None
    _undo: list[tuple[str, Undo]] = field(default_factory=list, repr=False)

    def on_undo(self, what: str, action: Undo) -> None:
        """Register how to remove something this start created (undone last-in first-out)."""
        self._undo.append((what, action))

    def forget(self, what: str) -> None:
        """Drop undo entries for ``what`` (it was removed or handed over meanwhile)."""
        self._undo = [(w, a) for w, a in self._undo if w != what]

    @property
    def created(self) -> list[str]:
        return [what for what, _ in self._undo]

    def succeeded(self) -> None:
        """The server runs: what this start made now belongs to it."""
        self._undo.clear()

    async def undo(self, log: logging.Logger | logging.LoggerAdapter, owner: str) -> None:
        """Remove what this start made, newest first; never raise, never stop half-way."""
        while self._undo:
            what, action = self._undo.pop()
            try:
                await action()
            except asyncio.CancelledError:
                log.warning("Cleanup of %s after a failed start of %s was cancelled", what, owner)
                raise
            except Exception as e:  # noqa: BLE001 - the rest must still be removed
                log.warning("Could not remove %s after a failed start of %s: %s", what, owner, e)
