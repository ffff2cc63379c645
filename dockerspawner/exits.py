"""Removing the containers of ``remove = True`` servers that exit by themselves.

When a server crashes, is OOM-killed or is killed from outside, JupyterHub
notices through ``poll()`` and does not call ``stop()``, so nothing would remove
its container. dockerspawner 14 set ``HostConfig.AutoRemove``; then a server
that dies while starting takes its exit code and log with it. Instead, one
watcher per engine follows the engine's ``die`` events for the containers it
was given, keeps each one's exit status for ``poll()``, and removes it at once.
A server that dies while starting is not watched yet, so the start can still
read its exit code and log tail before its undo removes it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict

from . import naming
from .engine import EngineError, NotFound
from .engine.protocol import DockerEngine
from .views import ContainerView

log = logging.getLogger(__name__)

#: Exit statuses kept for poll() after the container is gone.
KEEP_STATUSES = 10_000
#: Consecutive failures of the event stream before the watcher gives up (poll still removes).
MAX_FAILURES = 3


class ExitWatcher:
    """Follows ``die`` events of watched containers on one engine."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self.watched: set[str] = set()
        self.statuses: OrderedDict[str, str] = OrderedDict()
        self._task: asyncio.Task | None = None

    def watch(self, container_id: str) -> None:
        self.watched.add(container_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, container_id: str) -> None:
        self.watched.discard(container_id)
        if not self.watched and self._task is not None and not self._task.done():
            self._task.cancel()

    async def close(self) -> None:
        self.watched.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)

    def exit_status(self, container_id: str) -> str | None:
        return self.statuses.get(container_id)

    async def reap(self, view: ContainerView) -> str:
        """Record an exited container's status and remove it; return the status."""
        status = view.exit_status()
        self.statuses[view.id] = status
        while len(self.statuses) > KEEP_STATUSES:
            self.statuses.popitem(last=False)
        self.watched.discard(view.id)
        try:
            await self.engine.remove_container(view.id, force=True)
            log.info("Removed exited container %s (%s)", view.name, status)
        except NotFound:
            pass
        except EngineError as e:
            # "removal already in progress" and the like: it goes away anyway
            log.debug("Removing exited container %s: %s", view.name, e)
        return status

    async def _check(self, container_id: str) -> None:
        try:
            view = ContainerView.of(await self.engine.inspect_container(container_id))
        except NotFound:
            self.watched.discard(container_id)
            return
        if not view.running and view.status not in ("created", "restarting"):
            await self.reap(view)

    async def _run(self) -> None:
        failures = 0
        delay = 0.5
        filters = {"type": "container", "event": ["die"], "label": [f"{naming.LABEL_MANAGED}={naming.MANAGED_BY}"]}
        while self.watched and failures < MAX_FAILURES:
            stream = self.engine.events(filters=filters)
            try:
                # resync: a container may have died while no stream was open
                for cid in list(self.watched):
                    await self._check(cid)
                async for event in stream:
                    failures, delay = 0, 0.5
                    cid = (event.get("Actor") or {}).get("ID") or event.get("id")
                    if cid in self.watched:
                        await self._check(cid)
                    if not self.watched:
                        return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the engine went away; try again, bounded
                failures += 1
                log.debug("Exit watcher: event stream failed (%d/%d): %s", failures, MAX_FAILURES, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2)
            finally:
                await stream.aclose()


_watchers: weakref.WeakKeyDictionary[DockerEngine, ExitWatcher] = weakref.WeakKeyDictionary()


async def close_watchers(engine: DockerEngine | None = None) -> None:
    for eng, found in list(_watchers.items()):
        if engine is None or eng is engine:
            await found.close()


def watcher(engine: DockerEngine) -> ExitWatcher:
    """The engine's watcher, made on first use."""
    found = _watchers.get(engine)
    if found is None:
        found = _watchers[engine] = ExitWatcher(engine)
    return found
