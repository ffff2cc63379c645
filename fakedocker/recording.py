"""Call recording: what the code under test asked of the engine, in order."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One protocol call: its method name and a summary of its arguments
    (references and names as given, specs as dicts)."""

    method: str
    args: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0

    def __iter__(self) -> Iterator[Any]:
        # Lets a test unpack ``method, args = call``.
        return iter((self.method, self.args))


class CallLog:
    """A list of :class:`Call` with helpers for assertions.

    ``fake.calls.count("start_container")``, ``fake.calls.filter("create_*",
    name="jupyter-alice")``, ``fake.calls.methods()``.
    """

    def __init__(self) -> None:
        self._calls: list[Call] = []

    def record(self, method: str, args: dict[str, Any]) -> Call:
        call = Call(method, args, time.monotonic())
        self._calls.append(call)
        return call

    def filter(self, method: str = "*", **args: Any) -> list[Call]:
        """Calls whose method matches the glob and whose arguments equal the
        given ones (a glob string matches a string argument)."""
        out = []
        for call in self._calls:
            if not fnmatch.fnmatchcase(call.method, method):
                continue
            if all(_arg_matches(call.args.get(k), v) for k, v in args.items()):
                out.append(call)
        return out

    def count(self, method: str = "*", **args: Any) -> int:
        return len(self.filter(method, **args))

    def methods(self) -> list[str]:
        return [c.method for c in self._calls]

    def last(self, method: str = "*") -> Call | None:
        found = self.filter(method)
        return found[-1] if found else None

    def clear(self) -> None:
        self._calls.clear()

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls))

    def __getitem__(self, index: int) -> Call:
        return self._calls[index]

    def __repr__(self) -> str:
        return f"CallLog({self.methods()!r})"


def _arg_matches(have: Any, want: Any) -> bool:
    if isinstance(want, str) and isinstance(have, str):
        return fnmatch.fnmatchcase(have, want)
    return have == want
