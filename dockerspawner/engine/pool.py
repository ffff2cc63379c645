"""The docker-py backend's worker threads, serving the oldest spawn first.

A FIFO pool runs a burst of spawns breadth-first: with more spawns than
workers, every user's create waits behind every earlier call, then every
user's start, so all of them finish near the end (measured at N=200: median
spawn 0.97 of the wall). Here each call carries the time its spawn began
(``spawn_began``, a context variable a task's calls inherit), and a free
worker takes the call of the oldest spawn: users finish in the order they
asked, the wall time is unchanged. Calls outside a spawn (polls, stops, the
hub's start-up) rank by the time they were submitted.

The workers are started from the first one, not from the event loop:
``Thread.start()`` waits until the new thread runs, and a burst of spawns
would otherwise pay that wait on the loop once per worker.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

#: When the spawn that makes a call began (``time.monotonic()``), or None outside a spawn.
spawn_began: contextvars.ContextVar[float | None] = contextvars.ContextVar("dockerspawner_spawn_began", default=None)


@contextlib.contextmanager
def oldest_first(began: float | None = None) -> Iterator[None]:
    """Rank the engine calls made inside (by this task and tasks it creates) as
    those of a spawn that began at ``began`` (default: now)."""
    token = spawn_began.set(time.monotonic() if began is None else began)
    try:
        yield
    finally:
        spawn_began.reset(token)


class OldestFirstPool(Executor):
    """A bounded thread pool whose queue is ordered by ``spawn_began``
    (with ``by_spawn=False``, by submission: first in, first out)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "pool", *, by_spawn: bool = True) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._by_spawn = by_spawn
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._started = False
        self._shutdown = False
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        began = spawn_began.get() if self._by_spawn else None
        rank = time.monotonic() if began is None else began
        future: Future = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((rank, next(self._order), future, fn, args, kwargs))
            if not self._started:
                self._started = True
                self._spawn(0, starts_others=True)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            if cancel_futures:
                self._cancel_queued()
            for _ in range(self._max_workers):  # ranked after any queued call
                self._queue.put((math.inf, next(self._order), None, None, (), {}))
        if wait:
            for thread in list(self._threads):
                if thread is not threading.current_thread():
                    thread.join()

    # -- workers --------------------------------------------------------------------------
    def _spawn(self, number: int, *, starts_others: bool = False) -> None:
        thread = threading.Thread(
            target=self._work, args=(starts_others,), name=f"{self._prefix}_{number}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self, starts_others: bool) -> None:
        if starts_others:
            for number in range(1, self._max_workers):
                self._spawn(number)
        while True:
            _, _, future, fn, args, kwargs = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                future.set_exception(e)
            else:
                future.set_result(result)
            del future, fn, args, kwargs

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item[2] is not None:
                item[2].cancel()
