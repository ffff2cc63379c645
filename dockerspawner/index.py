"""One shared view of the engine's managed containers, kept fresh by its events.

JupyterHub polls every running server every ``poll_interval``; one inspect per
server makes the engine's load grow with the number of users. Instead, all
spawners of an engine read one index: a label-filtered list, then the engine's
event stream (replayed from just before the list, so nothing between the two
is missed), resynced every ``RESYNC`` seconds and whenever the stream breaks.
U running servers cost O(1) engine calls per poll interval. ``poll()`` trusts
the index only for "running"; anything else (stopped, unknown, out of sync) is
checked with an inspect, so a missed event can delay noticing a dead server
by at most one resync, and never makes a live server look dead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

from . import naming
from .engine.protocol import DockerEngine

log = logging.getLogger(__name__)

#: Seconds between full relists, even while the event stream looks healthy.
RESYNC = 60.0
#: Seconds since the last lookup after which the index stops following the engine.
IDLE = 300.0
#: Consecutive failed syncs before the follower stops (the next lookup starts it again).
MAX_FAILURES = 3
#: Events replay from this many seconds before the list (engine clock vs ours).
REPLAY_MARGIN = 2.0

_MANAGED = f"{naming.LABEL_MANAGED}={naming.MANAGED_BY}"
_STATE_ACTIONS = {"create", "start", "restart", "die", "kill", "stop", "oom", "pause", "unpause", "rename", "destroy"}


@dataclass
class Entry:
    id: str
    name: str
    running: bool


class ContainerIndex:
    """What the engine's managed containers are doing, for one engine."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self.entries: dict[str, Entry] = {}
        self.by_name: dict[str, str] = {}
        self.generations: dict[str, int] = {}
        self.synced_at: float | None = None
        self.in_sync = False
        self.engine_calls = 0
        self._last_lookup = time.monotonic()
        self._task: asyncio.Task | None = None
        self._first_sync: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._backing_off = False

    def lookup(self, ref: str) -> bool | None:
        """True/False from the index without waiting; None when it cannot say now
        (not in sync yet, unknown ref). Every poll of every server comes here, so
        it stays a few dict reads: no coroutine, no copies."""
        self._last_lookup = time.monotonic()
        task = self._task
        if task is None or task.done():
            self._ensure_following()
        if not self.in_sync:
            return None
        entry = self.entries.get(ref)
        if entry is None:
            cid = self.by_name.get(ref.lstrip("/"))
            entry = self.entries.get(cid) if cid else None
        return None if entry is None else entry.running

    async def running(self, ref: str) -> bool | None:
        """True/False from the index; None when it cannot say (not in sync, unknown ref).

        Waits (at most 5 s) for a sync attempt in flight, never for the pause
        after a failed one: while the engine is away every poll would otherwise
        stall for the follower's back-off before it could fall back to inspect.
        """
        answer = self.lookup(ref)
        if answer is not None or self.in_sync or self._backing_off:
            return answer
        assert self._first_sync is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._first_sync.wait()), 5)
        except asyncio.TimeoutError:
            return None
        return self.lookup(ref) if self.in_sync else None

    def _ensure_following(self) -> None:
        if self._task is None or self._task.done():
            self._first_sync = asyncio.Event()
            self._stop = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        # a flag, not only cancel(): a cancel can be lost in wait_for when the
        # awaited item arrives in the same loop iteration (Python < 3.12)
        if self._task is not None and not self._task.done():
            assert self._stop is not None
            self._stop.set()
            for _ in range(5):
                done, _ = await asyncio.wait({self._task}, timeout=2)
                if done:
                    break
                self._task.cancel()
        self.in_sync = False

    # -- following the engine --------------------------------------------------------------
    async def _sync(self) -> float:
        """Relist; return the time events must replay from."""
        since = time.time() - REPLAY_MARGIN
        self.engine_calls += 1
        listed = await self.engine.list_containers(all=True, filters={"label": [_MANAGED]})
        self.entries, self.by_name, self.generations = {}, {}, {}
        for item in listed:
            names = [n.lstrip("/") for n in item.get("Names") or []]
            self._put(item["Id"], names[0] if names else "", item.get("State") == "running")
        self.synced_at = time.monotonic()
        return since

    def _put(self, cid: str, name: str, running: bool) -> None:
        old = self.entries.get(cid)
        if old is not None and old.name != name:
            self.by_name.pop(old.name, None)
        self.entries[cid] = Entry(cid, name, running)
        if name:
            self.by_name[name] = cid

    def _apply(self, event: dict) -> None:
        """An event only invalidates: "running" comes from a list or an inspect.

        Events replayed from before the list (there is a margin) or arriving
        out of step with it can then never make a dead server look alive; the
        next poll of an invalidated container asks the engine.
        """
        actor = event.get("Actor") or {}
        cid = actor.get("ID") or event.get("id") or ""
        action = (event.get("Action") or event.get("status") or "").split(":", 1)[0]
        if not cid or action not in _STATE_ACTIONS:
            return
        self.generations[cid] = self.generations.get(cid, 0) + 1
        entry = self.entries.pop(cid, None)
        if entry is not None and self.by_name.get(entry.name) == cid:
            self.by_name.pop(entry.name, None)

    def generation(self, cid: str) -> int:
        """Bumped by every event of ``cid``: take it before an inspect, give it to ``learn``."""
        return self.generations.get(cid, 0)

    def learn(self, cid: str, name: str, running: bool, generation: int) -> None:
        """Record what an inspect found, unless an event came in meanwhile."""
        if self.in_sync and self.generations.get(cid, 0) == generation:
            self._put(cid, name, running)

    async def _follow(self) -> None:
        failures = 0
        delay = 0.2
        try:
            while (
                failures < MAX_FAILURES
                and time.monotonic() - self._last_lookup < IDLE
                and not (self._stop and self._stop.is_set())
            ):
                stream = None
                try:
                    since = await self._sync()
                    self.engine_calls += 1
                    stream = self.engine.events(filters={"type": "container", "label": [_MANAGED]}, since=since)
                    self.in_sync = True
                    assert self._first_sync is not None
                    self._first_sync.set()
                    failures, delay = 0, 0.2
                    await self._read(stream)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - out of sync until the next relist works
                    self.in_sync = False
                    failures += 1
                    log.debug("Container index lost the engine (%d/%d): %s", failures, MAX_FAILURES, e)
                    assert self._first_sync is not None
                    self._first_sync.set()  # waiting lookups fall back to inspect
                    self._first_sync = asyncio.Event()
                    self._backing_off = True
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)  # type: ignore[union-attr]
                    except asyncio.TimeoutError:
                        pass
                    finally:
                        self._backing_off = False
                    delay *= 2
                finally:
                    if stream is not None:
                        await stream.aclose()
        finally:
            self.in_sync = False
            if self._first_sync is not None:
                self._first_sync.set()

    async def _read(self, stream) -> None:
        """Apply events until a resync is due; the stream ending is a failure.

        The stream is read by a task of its own and handed over through a
        queue, so that waiting for the next event can time out without
        cancelling the stream's own iteration midway.
        """
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in stream:
                    queue.put_nowait(("event", event))
                queue.put_nowait(("end", None))
            except Exception as e:  # noqa: BLE001 - handed to the follower
                queue.put_nowait(("error", e))

        reader = asyncio.get_running_loop().create_task(pump())
        try:
            while True:
                assert self.synced_at is not None
                left = RESYNC - (time.monotonic() - self.synced_at)
                if left <= 0 or time.monotonic() - self._last_lookup >= IDLE:
                    return
                assert self._stop is not None
                got = asyncio.ensure_future(queue.get())
                stop = asyncio.ensure_future(self._stop.wait())
                try:
                    await asyncio.wait({got, stop}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    got.cancel()
                    stop.cancel()
                if self._stop.is_set() or not got.done() or got.cancelled():
                    return
                batch = [got.result()]
                while not queue.empty():  # a burst of starts: one wait for all that came
                    batch.append(queue.get_nowait())
                for kind, item in batch:
                    if kind == "end":
                        raise ConnectionError("the engine ended the event stream")
                    if kind == "error":
                        raise item
                    self._apply(item)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


_indexes: weakref.WeakKeyDictionary[DockerEngine, ContainerIndex] = weakref.WeakKeyDictionary()


def index_for(engine: DockerEngine) -> ContainerIndex:
    found = _indexes.get(engine)
    if found is None:
        found = _indexes[engine] = ContainerIndex(engine)
    return found


async def close_indexes(engine: DockerEngine | None = None) -> None:
    """Stop following ``engine`` (default: every engine), and stop its exit watcher.

    For tests and embedders that close an engine while the loop goes on; a
    follower that is not closed stops by itself once idle or once the engine
    stops answering.
    """
    from . import exits

    for eng, index in list(_indexes.items()):
        if engine is None or eng is engine:
            await index.close()
    await exits.close_watchers(engine)
