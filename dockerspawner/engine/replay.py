"""An event list that many readers follow from the start.

Used for shared pulls (every caller of a pull sees all of its events, however
late it joins) and for spawn progress (a browser that connects late still sees
the whole story).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from .protocol import EngineError

T = TypeVar("T")


class Replay(Generic[T]):
    def __init__(self) -> None:
        self.items: list[T] = []
        self.error: BaseException | None = None
        self.done = False
        self._changed = asyncio.Event()

    def add(self, item: T) -> None:
        self.items.append(item)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncIterator[T]:
        """Every item so far, then each new one, until ``finish``; then raise its error."""
        seen = 0
        while True:
            while seen < len(self.items):
                seen += 1
                yield self.items[seen - 1]
            if self.done:
                if self.error is not None:
                    raise _fresh(self.error)
                return
            await self._changed.wait()


def _fresh(error: BaseException) -> BaseException:
    # one instance raised to many readers would collect all of their tracebacks
    if isinstance(error, EngineError):
        return type(error)(error.explanation, error.status)
    return error
