"""The engine's event stream: every state change is published here, in the
engine's JSON shape, and fanned out to subscribers with docker's filters."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from dockerspawner.engine.protocol import EngineUnavailable

from ._util import normalize_filters, now_ns

#: How many past events ``since`` can replay.
HISTORY = 10_000


def event_matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """docker's event filters: values of one key are alternatives (OR), keys
    must all hold (AND); ``label`` values must all hold."""
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    etype = event.get("Type", "")
    action = event.get("Action", "")
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            if etype not in values:
                return False
        elif key == "event":
            base = action.split(":", 1)[0]
            if action not in values and base not in values:
                return False
        elif key == "label":
            for item in values:
                k, eq, v = item.partition("=")
                if k not in attrs or (eq and attrs[k] != v):
                    return False
        elif key in _OBJECT_KEYS:
            candidates = _candidates(key, etype, actor, attrs)
            if not any(_names(have, want) for want in values for have in candidates):
                return False
        elif key == "scope":
            if event.get("scope", "local") not in values:
                return False
    return True


_OBJECT_KEYS = ("container", "image", "network", "volume", "service", "node", "config", "secret")


def _candidates(key: str, etype: str, actor: dict, attrs: dict) -> set[str]:
    """What an object filter compares with: the actor itself when the event
    is about that kind of object, else the attribute naming it (a container
    event's image, a network event's container); nothing otherwise."""
    if etype == key:
        return {actor.get("ID", ""), attrs.get("name", "")}
    if key == "image" and etype == "container":
        return {attrs.get("image", "")}
    if key == "container" and etype == "network":
        return {attrs.get("container", "")}
    return set()


def _names(have: str, want: str) -> bool:
    return bool(have) and (have == want or have.startswith(want) or have == want.lstrip("/"))


class EventBus:
    """Publishes events to every live subscription; keeps a bounded history
    so ``since`` works like the engine's."""

    def __init__(self) -> None:
        self.history: deque[dict] = deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue] = set()
        self._closed = False

    def publish(
        self,
        etype: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        *,
        scope: str = "local",
        extra: dict[str, Any] | None = None,
    ) -> dict:
        ns = now_ns()
        event: dict[str, Any] = {}
        if etype == "container":
            event["status"] = action
            event["id"] = actor_id
            if attributes and "image" in attributes:
                event["from"] = attributes["image"]
        elif etype == "image":
            event["status"] = action
            event["id"] = actor_id
        event.update(
            {
                "Type": etype,
                "Action": action,
                "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
                "scope": scope,
                "time": ns // 1_000_000_000,
                "timeNano": ns,
            }
        )
        if extra:
            event.update(extra)
        self.history.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(event)
        return event

    async def subscribe(
        self, filters: dict[str, Any] | None, since: float | None, is_down: Any
    ) -> AsyncIterator[dict]:
        """Yield matching events until the consumer stops, the engine goes
        down (``EngineUnavailable``, as a dropped connection) or closes."""
        wanted = normalize_filters(filters)
        queue: asyncio.Queue = asyncio.Queue()
        if since is not None:
            since_ns = int(float(since) * 1_000_000_000)
            for event in list(self.history):
                if event["timeNano"] >= since_ns:
                    queue.put_nowait(event)
        self._subscribers.add(queue)
        try:
            while True:
                event = await queue.get()
                if event is _END:
                    return
                if event is _DOWN:
                    raise EngineUnavailable("the event stream ended: the engine went down")
                if is_down():
                    raise EngineUnavailable("the event stream ended: the engine went down")
                if event_matches(event, wanted):
                    yield event
        finally:
            self._subscribers.discard(queue)

    def drop_all(self) -> None:
        """The engine went down: every open stream breaks."""
        for queue in list(self._subscribers):
            queue.put_nowait(_DOWN)

    def close(self) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(_END)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


_END: Any = object()
_DOWN: Any = object()
