"""Spawners on every engine under test, configured the way existing deployments are.

``spawner_factory(cls=DockerSpawner, name="alice", server="", **traits)`` makes a
spawner bound to the engine of the test (fakedocker or a real engine) with a
real JupyterHub ``User`` (in-memory database, no hub process). It runs busybox
httpd from ``local/busybox:test`` (any HTTP answer counts as "up"), and labels
its containers for this test run so the engine fixture removes them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dockerspawner import DockerSpawner
from dockerspawner.engine.connect import forget_engines
from dockerspawner.index import close_indexes

from contract.helpers import HTTPD_CMD

_prefixes = itertools.count(1)


@pytest.fixture
async def spawner_factory(engine: Any, test_image: str, test_labels: dict) -> Iterator[Callable[..., Any]]:
    from jupyterhub import orm
    from jupyterhub.objects import Hub
    from jupyterhub.user import User

    db = orm.new_session_factory("sqlite:///:memory:")()
    users: dict[str, User] = {}
    run = test_labels["org.jupyterhub.test.run"]
    prefix = f"compat{run}n{next(_prefixes)}"
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
        traits.setdefault("image", test_image)
        traits.setdefault("cmd", list(HTTPD_CMD))
        traits.setdefault("prefix", prefix)
        traits.setdefault("start_timeout", 30)
        traits.setdefault("http_timeout", 15)
        traits.setdefault("extra_create_kwargs", {"labels": dict(test_labels)})
        # busybox httpd as PID 1 ignores SIGTERM: an init passes it on, so stop is quick
        traits.setdefault("extra_host_config", {"init": True})
        spawner = user._new_spawner(server, spawner_class=cls, **traits)
        made.append(spawner)
        return spawner

    make.prefix = prefix  # type: ignore[attr-defined]
    make.labels = dict(test_labels)  # type: ignore[attr-defined]
    yield make
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
