"""fakedocker: an in-memory Docker engine for tests.

``FakeDocker`` implements the Docker client protocol of
``dockerspawner.engine.protocol`` (the same one the real docker-py backend
implements), answers in the real engine's JSON shapes and error messages,
and adds what tests need: fault injection (``fake.faults``), call recording
(``fake.calls``), a pullable registry (``fake.registry``), simulated programs
(``fake.programs``), swarm services (``fake.swarm``) and an opt-in process
mode. See ``fakedocker/README.md``.
"""

from .engine import ExecScript, FakeDocker
from .faults import ContainerFault, Faults, Rule
from .images import BUSYBOX_FILES, Registry
from .programs import Proc, Program, Programs
from .recording import Call, CallLog
from .swarm import Swarm

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
