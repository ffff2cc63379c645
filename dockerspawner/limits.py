"""mem_limit and cpu_limit: numbers, or callables evaluated at every start.

14 evaluated a callable once, when the spawner was made, and the trait showed
the number from then on; hooks rely on reading a number. Here the callable is
kept aside and evaluated before ``pre_spawn_hook`` and at every start, and the
trait shows what it gave.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.traitlets import ByteSpecification, Callable as CallableTrait
from traitlets import Float, HasTraits, Union, validate

from .errors import _maybe_await


class CallableLimits(HasTraits):
    """The limit traits and their per-start evaluation."""

    mem_limit = Union(
        [CallableTrait(), ByteSpecification()],
        default_value=None,
        allow_none=True,
        config=True,
        help="""The memory a server may use, in bytes or with a K, M, G or T suffix (e.g. '2G'), or a
        callable (spawner) -> limit evaluated at every start. None (the default): no limit. A server
        that exceeds it is killed.""",
    )
    cpu_limit = Union(
        [CallableTrait(), Float()],
        default_value=None,
        allow_none=True,
        config=True,
        help="""The number of CPU cores a server may use (e.g. 1.5), or a callable (spawner) -> number
        evaluated at every start. None (the default): no limit.""",
    )

    # -- limits evaluated per start ------------------------------------------------
    @validate("mem_limit", "cpu_limit")
    def _remember_limit_source(self, proposal: dict) -> Any:
        """A callable limit is kept aside, so that the trait can show the number it
        gave at the last start (as 14 did) and still be evaluated again next time."""
        name, value = proposal["trait"].name, proposal["value"]
        sources = self.__dict__.setdefault("_limit_sources", {})
        if callable(value):
            sources[name] = value
        elif not self.__dict__.get("_setting_limits"):
            sources.pop(name, None)  # an admin's or hook's own number wins
        return value

    async def _evaluate_limits(self) -> tuple[int | None, float | None]:
        sources = self.__dict__.get("_limit_sources", {})
        values = {}
        for name in ("mem_limit", "cpu_limit"):
            value = sources.get(name, getattr(self, name))
            if callable(value):
                value = await _maybe_await(value(self))
            values[name] = value
        self.__dict__["_setting_limits"] = True
        try:
            for name, value in values.items():
                setattr(self, name, value)  # validated: "2G" -> bytes
        finally:
            self.__dict__["_setting_limits"] = False
        mem, cpu = self.mem_limit, self.cpu_limit
        return (None if callable(mem) else mem), (None if callable(cpu) else cpu)

    async def run_pre_spawn_hook(self) -> Any:
        # hooks read spawner.mem_limit as a number, as with 14
        await self._evaluate_limits()
        return await _maybe_await(super().run_pre_spawn_hook())
