"""What the plugin needs from pytest-asyncio, on every version the supported
JupyterHubs allow (0.17 ... 1.x), in strict, auto or unconfigured mode.

``pytest_asyncio.fixture`` marks a fixture as asyncio's in every mode (a plain
``pytest.fixture`` on a coroutine is ignored in strict mode). No ``loop_scope``
is given, so the fixtures follow the project's own default loop scope.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

#: pytest-asyncio (0.24 ... 1.x) warns at configure time when this option is unset.
LOOP_SCOPE_OPTION = "asyncio_default_fixture_loop_scope"
_LOOP_SCOPE_NOTICE = f'The configuration option "{LOOP_SCOPE_OPTION}" is unset'

MISSING_PLUGIN = (
    "fakedocker's fixtures are async and need pytest-asyncio: "
    "`pip install pytest-asyncio` (any version from 0.17)"
)

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised by a downstream venv without it
    pytest_asyncio = None


def async_fixture(fn: F) -> F:
    """``fn`` as an async fixture that pytest-asyncio runs in any mode; without
    pytest-asyncio, a fixture that fails with how to install it."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(fn)

    def missing(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(MISSING_PLUGIN, pytrace=False)

    missing.__name__ = fn.__name__
    missing.__doc__ = fn.__doc__
    return pytest.fixture(name=fn.__name__)(missing)  # type: ignore[return-value]


def keep_loop_scope_notice_from_failing() -> None:
    """pytest-asyncio's notice that ``asyncio_default_fixture_loop_scope`` is
    unset is raised while pytest configures itself, where ``-W error`` turns it
    into an INTERNALERROR before any test runs. It concerns the project's
    configuration, not a test: show it as a warning whatever ``-W`` says,
    without changing the loop scope it describes."""
    warnings.filterwarnings("default", message=_LOOP_SCOPE_NOTICE)
