"""Who owns a container: owner labels against the hub's users and servers (issue 11, §4).

Runs on every engine under test (fakedocker and the real engine), against a real
JupyterHub sqlite database made by the hub's orm. The case that must never
happen: a stopped container of an existing user (state ``{}`` after stop, as in
dockerspawner 14) called an orphan and removed with the user's data.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from dockerspawner import DockerSpawner, orphans

pytestmark = pytest.mark.engine


def test_owns_by_labels_and_refs():
    owners = orphans.Owners(
        users=frozenset({"alice", "bob"}), named=frozenset({("alice", "Lab")}), refs=frozenset({"kept-by-ref"})
    )
    assert owners.owns(("alice", ""), [])
    assert owners.owns(("bob", ""), []), "a user without a Spawner row still owns the default server"
    assert owners.owns(("alice", "Lab"), [])
    assert not owners.owns(("alice", "lab"), []), "server names are exact, as the hub spells them"
    assert not owners.owns(("bob", "Lab"), [])
    assert not owners.owns(("carol", ""), [])
    assert owners.owns(("carol", ""), ["id1", "kept-by-ref"]), "a saved state that names it keeps it"
    assert owners.owns(None, ["x"]), "no owner labels: never an orphan"


async def test_hub_owners_from_a_real_hub_database(hub_db):
    from jupyterhub import orm

    url = hub_db({"alice": {"": {}, "lab": {"object_id": "abc", "object_name": "n1"}}, "bob": {}})
    session = orphans.open_hub_db(url)
    try:
        owners = orphans.hub_owners(session)
    finally:
        session.close()
    assert owners == orphans.Owners(
        users=frozenset({"alice", "bob"}), named=frozenset({("alice", "lab")}), refs=frozenset({"abc", "n1"})
    )
    db = orm.new_session_factory(url)()
    assert db.query(orm.User).count() == 2, "reading must not change the database"
    db.close()


def test_remove_orphans_refuses_saved_state_refs():
    """The old call (a set of refs from states) must fail loudly, not sweep by states."""
    with pytest.raises(TypeError, match="Owners"):
        asyncio.run(orphans.remove_orphans(None, {"jupyter-alice"}, prefix="jupyter"))


async def populate(engine, image, hub_db, make_container, prefix):
    """One container per case; returns (url, names that must stay, names that are orphans)."""
    url = hub_db(
        {
            "alice": {"": {}, "Lab": {}},  # stopped: states are {} (14's state after stop)
            "bob": {},  # no Spawner row at all
            "renamed": {"": {"object_name": f"{prefix}-old-name"}},
        }
    )
    cases = {
        "alice": (("alice", ""), True),
        "alice--lab-upper": (("alice", "Lab"), True),
        "alice-running": (("alice", ""), True),
        "bob": (("bob", ""), True),
        "old-name": (("old-name", ""), True),  # its user was renamed; the saved state names it
        "unknown-owner": (None, True),
        "legacy14": ("unmanaged", True),
        "alice--lab-lower": (("alice", "lab"), False),  # no server "lab", only "Lab"
        "bob--gone": (("bob", "gone"), False),  # a deleted named server
        "carol": (("carol", ""), False),  # a deleted user
        "carol--x": (("carol", "x"), False),
    }
    keep, gone = set(), set()
    for suffix, (owner, kept) in cases.items():
        name = f"{prefix}-{suffix}"
        await make_container(engine, image, name, owner, running=suffix == "alice-running")
        (keep if kept else gone).add(name)
    other = f"{prefix}x-carol"  # another hub's prefix: never ours to judge
    await make_container(engine, image, other, ("carol", ""))
    keep.add(other)
    return url, keep, gone


async def names_with(engine, prefix: str) -> set[str]:
    listed = await engine.list_containers(all=True, filters={"name": [prefix]})
    return {c["Names"][0].lstrip("/") for c in listed}


async def test_only_containers_of_missing_owners_are_orphans(engine, test_image, hub_db, make_container, ev_prefix):
    url, keep, gone = await populate(engine, test_image, hub_db, make_container, ev_prefix)
    owners = orphans.read_owners(url)
    later = math.floor(time.time()) + 1

    found = await orphans.find_orphans(engine, owners, prefix=ev_prefix, created_before=later)
    assert {o.name for o in found} == gone
    by_name = {o.name: o for o in found}
    line = by_name[f"{ev_prefix}-carol--x"].describe(time.time())
    assert "user='carol' server='x'" in line and "age " in line and "created" in line

    assert await orphans.find_orphans(engine, owners, prefix=ev_prefix, created_before=0) == [], (
        "containers created after the sweep started must be spared"
    )
    listed = await orphans.remove_orphans(engine, owners, prefix=ev_prefix, created_before=later, dry_run=True)
    assert set(listed) == gone
    assert await names_with(engine, ev_prefix) == keep | gone, "a dry run removes nothing"

    removed = await orphans.remove_orphans(engine, owners, prefix=ev_prefix, created_before=later)
    assert set(removed) == gone
    assert await names_with(engine, ev_prefix) == keep


async def test_hub_start_sweep_keeps_stopped_servers_of_existing_users(
    engine, test_image, hub_db, make_container, ev_prefix, caplog
):
    """``remove_orphans=True``: the first spawner the hub makes sweeps by the same rules."""
    from jupyterhub import orm
    from jupyterhub.objects import Hub
    from jupyterhub.user import User

    caplog.set_level(logging.INFO)
    url, keep, gone = await populate(engine, test_image, hub_db, make_container, ev_prefix)
    await asyncio.sleep(1.05)  # Created is in whole seconds; the sweep spares its own second
    db = orm.new_session_factory(url)()
    user = User(db.query(orm.User).filter_by(name="alice").one(), {"hub": Hub(), "db": db})
    spawner = user._new_spawner("", spawner_class=DockerSpawner, engine=engine, prefix=ev_prefix, remove_orphans=True)
    # the hub's logger (alembic's logging setup stops it propagating to caplog)
    spawner.log.addHandler(caplog.handler)
    try:
        deadline = time.monotonic() + 20
        while await names_with(engine, ev_prefix) & gone and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await names_with(engine, ev_prefix) == keep
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert all(name in logged for name in gone), "each removal must be logged"
    finally:
        spawner.log.removeHandler(caplog.handler)
        db.close()
