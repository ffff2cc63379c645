"""Concurrent identical engine reads share one call.

When a hub starts many servers at once, every start asks the engine about the
same image in the same second. The answer cannot differ between them, so one
call in flight serves every start that asks while it runs; a start that asks
after it finished makes a call of its own. The engine's answer is never older
than the call that was already running when a start asked.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from .engine.protocol import DockerEngine

T = TypeVar("T")

_in_flight: weakref.WeakKeyDictionary[DockerEngine, dict[Hashable, asyncio.Future]] = weakref.WeakKeyDictionary()


async def shared(engine: DockerEngine, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``, or join the same call already in flight on ``engine``.

    The call runs as its own task, so one caller's cancellation does not cancel
    the others' answer; its result or error is every joiner's.
    """
    calls = _in_flight.setdefault(engine, {})
    loop = asyncio.get_running_loop()
    future = calls.get(key)
    if future is None or future.get_loop() is not loop:
        future = calls[key] = asyncio.ensure_future(call())

        def forget(done: asyncio.Future, key: Hashable = key) -> None:
            if calls.get(key) is done:
                del calls[key]
            if not done.cancelled():
                done.exception()  # retrieved: joiners that left must not make it "never retrieved"

        future.add_done_callback(forget)
    return await asyncio.shield(future)


async def inspect_image(engine: DockerEngine, ref: str) -> dict[str, Any]:
    """The engine's inspect of image ``ref``, shared by the starts asking at the same time."""
    return await shared(engine, ("inspect_image", ref), lambda: engine.inspect_image(ref))
