"""The testing kit around fakedocker: spawners without a hub
(``make_spawner``, ``start_spawner``), a whole hub with a REST client
(``make_hub``, ``HubClient``), what the user sees of a failure
(``user_message``), and the real engine behind the same fixtures
(``--fakedocker-engine=docker``).

These modules import dockerspawner and JupyterHub; the fake's core does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakedocker import lazy_exports

if TYPE_CHECKING:
    from .engines import ensure_image, is_fake  # noqa: F401 (lazy exports, for type checkers)
    from .hub import HubClient, HubFactory, SpawnFailed  # noqa: F401 (lazy exports, for type checkers)
    from .spawners import SpawnerFactory, start_spawner, stop_spawner, user_message  # noqa: F401 (lazy exports, for type checkers)

_EXPORTS = {
    "ensure_image": ".engines",
    "is_fake": ".engines",
    "HubClient": ".hub",
    "HubFactory": ".hub",
    "SpawnFailed": ".hub",
    "SpawnerFactory": ".spawners",
    "start_spawner": ".spawners",
    "stop_spawner": ".spawners",
    "user_message": ".spawners",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
