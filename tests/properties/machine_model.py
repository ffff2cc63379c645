"""The hub the fault machine plays, as plain data: which servers exist and what
the hub believes about each (issue 11, §2).

Kept apart from the machine so the invariants read as checks of this model
against what fakedocker holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGE_A = "quay.io/jupyterhub/singleuser:test"
IMAGE_B = "quay.io/jupyterhub/singleuser:other"
IMAGES = (IMAGE_A, IMAGE_B)
ALLOWED = {"a": IMAGE_A, "b": IMAGE_B}
MEM_LIMITS: dict[str | None, int] = {None: 0, "256M": 256 * 1024**2, "1G": 1024**3}


@dataclass(frozen=True)
class Slot:
    """One named server: its spawner kind, owner, name and whether stop removes it."""

    kind: str  # "docker" | "swarm" | "system" | "flaky"
    user: str
    server: str
    remove: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.user, self.server)


SLOTS = (
    Slot("docker", "alice", "", remove=False),
    Slot("docker", "alice", "lab", remove=True),
    Slot("docker", "bob", "", remove=True),
    Slot("swarm", "carol", "", remove=True),
    Slot("system", "dave", "", remove=False),
    Slot("flaky", "erin", "x", remove=False),
)


@dataclass
class Belief:
    """What the hub holds for one server.

    ``status``: "stopped"; "running"; or "stuck" when a stop failed, so the hub
    still holds the state and the object may still exist.
    ``asked``: (image, memory bytes) of its last successful start.
    """

    status: str = "stopped"
    state: dict[str, Any] = field(default_factory=dict)
    asked: tuple[str, int] | None = None


def asked_spec(config: dict[str, Any], user_options: dict[str, Any]) -> tuple[str, int]:
    """The (image, memory) a start with this hub config and these options must run."""
    choice = user_options.get("image")
    image = ALLOWED.get(choice, choice) if choice else config["image"]
    return image, MEM_LIMITS[config["mem_limit"]]


def owner_of(labels: dict[str, str]) -> tuple[str, str] | None:
    user = labels.get("org.jupyterhub.user")
    if user is None:
        return None
    return (user, labels.get("org.jupyterhub.server", ""))


def orphans(owners: list[tuple[str, str]], beliefs: dict[tuple[str, str], tuple[Slot, Belief]]) -> list[tuple[str, str]]:
    """Owners of labelled objects that no server of the hub accounts for: unknown,
    or stopped while its spawner removes on stop."""
    bad = []
    for owner in owners:
        entry = beliefs.get(owner)
        if entry is None:
            bad.append(owner)
            continue
        slot, belief = entry
        if belief.status == "stopped" and slot.remove:
            bad.append(owner)
    return bad
