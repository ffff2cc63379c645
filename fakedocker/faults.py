"""Fault injection: make chosen calls fail or wait, make containers die.

Rules are consulted at the start of every protocol call, in the order they
were added; a rule with ``times`` is used up after that many matches.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]


@dataclass
class Rule:
    """One injected fault. ``remaining`` None means "until removed"."""

    op: str
    error: BaseException | type[BaseException] | Callable[[], BaseException] | None = None
    delay: float = 0.0
    remaining: int | None = 1
    match: Matcher | None = None
    hits: int = 0

    def applies(self, op: str, args: dict[str, Any]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if not fnmatch.fnmatchcase(op, self.op):
            return False
        return self.match is None or bool(self.match(args))

    def make_error(self, op: str) -> BaseException | None:
        err = self.error
        if err is None:
            return None
        if isinstance(err, BaseException):
            # A fresh copy per raise, so tracebacks of separate failures do
            # not pile up on one exception object.
            try:
                return copy.copy(err)
            except Exception:  # noqa: BLE001 - an exotic exception: reuse it
                return err
        if isinstance(err, type):
            try:
                return err(f"fakedocker: injected {err.__name__} in {op}")
            except TypeError:
                return err()
        return err()


@dataclass
class ContainerFault:
    """What happens to containers whose name matches ``pattern`` after they start."""

    pattern: str
    after: float
    exit_code: int = 1
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    oom: bool = False
    remaining: int | None = 1

    def take(self, name: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if not fnmatch.fnmatchcase(name.lstrip("/"), self.pattern):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class Faults:
    """The public fault-injection API of a ``FakeDocker`` (``fake.faults``).

    ``op`` names are the protocol's method names (``"start_container"``,
    ``"pull_image"``, ...); shell-style wildcards work (``"*"``, ``"*_container"``).
    """

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.container_faults: list[ContainerFault] = []

    def fail(
        self,
        op: str,
        error: BaseException | type[BaseException] | Callable[[], BaseException],
        *,
        times: int | None = 1,
        match: Matcher | str | None = None,
    ) -> Rule:
        """Make the next ``times`` calls of ``op`` raise ``error`` (``None``: all
        of them until :meth:`clear`). ``match`` narrows it to calls whose
        recorded arguments satisfy a predicate, or whose ``ref``/``name``
        argument matches a glob."""
        rule = Rule(op=op, error=error, remaining=times, match=_matcher(match))
        self.rules.append(rule)
        return rule

    def delay(
        self, op: str, seconds: float, *, times: int | None = None, match: Matcher | str | None = None
    ) -> Rule:
        """Make calls of ``op`` take ``seconds`` longer (before they act)."""
        rule = Rule(op=op, delay=seconds, remaining=times, match=_matcher(match))
        self.rules.append(rule)
        return rule

    def exit_after_start(
        self,
        pattern: str = "*",
        *,
        after: float = 0.0,
        exit_code: int = 1,
        stdout: list[str] | None = None,
        stderr: list[str] | None = None,
        oom: bool = False,
        times: int | None = 1,
    ) -> ContainerFault:
        """Make containers named like ``pattern`` exit ``after`` seconds after
        they start, with ``exit_code`` and these log lines. ``oom=True``
        means an OOM kill (exit 137, ``State.OOMKilled``)."""
        fault = ContainerFault(
            pattern=pattern,
            after=after,
            exit_code=137 if oom else exit_code,
            stdout=list(stdout or []),
            stderr=list(stderr or []),
            oom=oom,
            remaining=times,
        )
        self.container_faults.append(fault)
        return fault

    def clear(self) -> None:
        self.rules.clear()
        self.container_faults.clear()

    # -- used by the engine ---------------------------------------------------------
    async def apply(self, op: str, args: dict[str, Any]) -> None:
        for rule in list(self.rules):
            if not rule.applies(op, args):
                continue
            rule.hits += 1
            if rule.remaining is not None:
                rule.remaining -= 1
            if rule.delay:
                await asyncio.sleep(rule.delay)
            err = rule.make_error(op)
            if err is not None:
                raise err
        self.rules = [r for r in self.rules if r.remaining is None or r.remaining > 0]

    def container_fault_for(self, name: str) -> ContainerFault | None:
        for fault in self.container_faults:
            if fault.take(name):
                return fault
        return None


def _matcher(match: Matcher | str | None) -> Matcher | None:
    if match is None or callable(match):
        return match
    pattern = match

    def by_name(args: dict[str, Any]) -> bool:
        for key in ("ref", "name", "container", "network"):
            value = args.get(key)
            if isinstance(value, str) and fnmatch.fnmatchcase(value.lstrip("/"), pattern):
                return True
        return False

    return by_name
