"""A real JupyterHub database (made by the hub's own orm) and labelled containers.

``hub_db({"alice": {"": {}, "lab": {"object_name": "x"}}, "bob": {}})`` writes a
sqlite database in ``tmp_path/db`` with user rows, one Spawner row per server name
(with that saved state), and returns its URL. ``make_container(prefix, suffix,
owner)`` creates a container named ``<prefix>-<suffix>`` labelled for ``owner``
(``(user, server)``, or ``None`` for "managed, owner unknown", or ``"unmanaged"``)
and this test run's labels, so the engine fixture removes it after the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dockerspawner import naming

_prefixes = itertools.count(1)


@pytest.fixture
def hub_db(tmp_path: Path) -> Callable[[dict], str]:
    from jupyterhub import orm

    def make(users: dict[str, dict[str, dict]]) -> str:
        (tmp_path / "db").mkdir(exist_ok=True)
        url = f"sqlite:///{tmp_path}/db/jupyterhub.sqlite"
        db = orm.new_session_factory(url)()
        try:
            for name, servers in users.items():
                user = orm.User(name=name)
                db.add(user)
                db.commit()
                for server, state in servers.items():
                    db.add(orm.Spawner(user=user, name=server, state=state))
                db.commit()
        finally:
            db.close()
        return url

    return make


@pytest.fixture
def ev_prefix(test_labels: dict[str, str]) -> str:
    """A DockerSpawner prefix no other test or helper uses (``ev-<run>-<n>``)."""
    return f"ev-{test_labels['org.jupyterhub.test.run']}-{next(_prefixes)}"


@pytest.fixture
def make_container(test_labels: dict[str, str]) -> Callable[..., Awaitable[str]]:
    async def make(engine: Any, image: str, name: str, owner: Any, *, running: bool = False) -> str:
        labels = dict(test_labels)
        if owner == "unmanaged":
            pass
        elif owner is None:
            labels[naming.LABEL_MANAGED] = naming.MANAGED_BY
        else:
            labels.update(naming.owner_labels(*owner))
        command = ["sleep", "300"] if running else ["true"]
        cid = await engine.create_container({"name": name, "image": image, "command": command, "labels": labels})
        if running:
            await engine.start_container(cid)
        return cid

    return make
