"""A factory of spawners bound to one engine, with real JupyterHub users
(in-memory database, no hub process). Used by ``spawner_factory`` and by
tests/swarm on the multi-node rig."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from dockerspawner import DockerSpawner, SwarmSpawner
from dockerspawner.engine.connect import forget_engines
from dockerspawner.index import close_indexes

from contract.helpers import HTTPD_CMD


@contextlib.asynccontextmanager
async def spawners(engine: Any, image: str, prefix: str, labels: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """``make(cls, name, server, **traits)`` for ``engine``; every spawner made
    is stopped afterwards. Also used by tests/swarm on the multi-node rig."""
    from jupyterhub import orm
    from jupyterhub.objects import Hub
    from jupyterhub.user import User

    db = orm.new_session_factory("sqlite:///:memory:")()
    users: dict[str, User] = {}
    made: list[Any] = []

    def make(cls: type = DockerSpawner, name: str = "alice", server: str = "", **traits: Any) -> Any:
        if name not in users:
            orm_user = orm.User(name=name)
            db.add(orm_user)
            db.commit()
            users[name] = User(orm_user, {"hub": Hub(), "db": db})
        user = users[name]
        if server not in user.orm_spawners:
            db.add(orm.Spawner(user=user.orm_user, name=server))
            db.commit()
        traits.setdefault("engine", engine)
        traits.setdefault("image", image)
        traits.setdefault("cmd", list(HTTPD_CMD))
        traits.setdefault("prefix", prefix)
        traits.setdefault("start_timeout", 30)
        traits.setdefault("http_timeout", 15)
        traits.setdefault("extra_create_kwargs", {"labels": dict(labels)})
        # busybox httpd as PID 1 ignores SIGTERM: an init passes it on, so stop is quick
        traits.setdefault("extra_host_config", {"init": True})
        if issubclass(cls, SwarmSpawner):
            # the same for a service's task; reached by its host-mode published port
            traits.setdefault("extra_container_spec", {"init": True, "stop_grace_period": 10**9})
            traits.setdefault("use_internal_ip", False)
        spawner = user._new_spawner(server, spawner_class=cls, **traits)
        made.append(spawner)
        return spawner

    make.prefix = prefix  # type: ignore[attr-defined]
    make.labels = dict(labels)  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for spawner in made:
            if spawner.object_id:
                try:
                    await spawner.stop(now=True)
                except Exception:  # noqa: BLE001 - the engine fixture removes what is left
                    pass
        for eng in forget_engines():
            await close_indexes(eng)
            await eng.close()
        db.close()
