"""fakedocker: an in-memory Docker engine for tests.

``FakeDocker`` implements the Docker client protocol of
``dockerspawner.engine.protocol`` (the same one the real docker-py backend
implements), answers in the real engine's JSON shapes and error messages,
and adds what tests need: fault injection (``fake.faults``), call recording
(``fake.calls``), a pullable registry (``fake.registry``), simulated programs
(``fake.programs``), swarm services (``fake.swarm``) and an opt-in process
mode. See ``fakedocker/README.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# help(fakedocker) is the guide (README.md ships with the package)
try:
    __doc__ = (Path(__file__).with_name("README.md").read_text(encoding="utf-8") + "\n" + (__doc__ or ""))
except OSError:  # pragma: no cover - a copy without its data files
    pass

if TYPE_CHECKING:
    from .engine import ExecScript, FakeDocker
    from .faults import ContainerFault, Faults, Rule
    from .images import BUSYBOX_FILES, Registry
    from .programs import Proc, Program, Programs
    from .recording import Call, CallLog
    from .swarm import Swarm

# Names are imported on first use, so that importing the package (as pytest
# does for the plugin) does not import dockerspawner and jupyterhub.
_EXPORTS = {
    "BUSYBOX_FILES": ".images",
    "Call": ".recording",
    "CallLog": ".recording",
    "ContainerFault": ".faults",
    "ExecScript": ".engine",
    "FakeDocker": ".engine",
    "Faults": ".faults",
    "Proc": ".programs",
    "Program": ".programs",
    "Programs": ".programs",
    "Registry": ".images",
    "Rule": ".faults",
    "Swarm": ".swarm",
}

__all__ = [
    "BUSYBOX_FILES",
    "Call",
    "CallLog",
    "ContainerFault",
    "ExecScript",
    "FakeDocker",
    "Faults",
    "Proc",
    "Program",
    "Programs",
    "Registry",
    "Rule",
    "Swarm",
]


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports`` (name -> relative
    module) on first use and keeps them in ``namespace``."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return getattr_


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
