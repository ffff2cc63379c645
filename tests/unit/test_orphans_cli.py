"""`python -m dockerspawner.orphans` on the real engine: lists, then removes, only orphans."""

from __future__ import annotations

import asyncio

import pytest
from jupyterhub import orm

from dockerspawner import naming, orphans

pytestmark = pytest.mark.real_engine


async def test_cli_lists_then_removes_only_orphans(real_engine, real_test_image, test_labels, tmp_path, unique_name, capsys):
    prefix = unique_name("orph")
    db_url = f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    db = orm.new_session_factory(db_url)()
    user = orm.User(name="kept")
    db.add(user)
    db.commit()
    db.add(orm.Spawner(user=user, name="", state={"object_name": f"{prefix}-kept"}))
    db.commit()
    db.close()
    labels = {**test_labels, **naming.owner_labels("gone", "")}
    for suffix in ("kept", "gone"):
        await real_engine.create_container(
            {"name": f"{prefix}-{suffix}", "image": real_test_image, "command": ["true"], "labels": labels}
        )

    assert await asyncio.to_thread(orphans.main, ["--db-url", db_url, "--prefix", prefix]) == 0
    assert f"1 orphaned container(s): {prefix}-gone" in capsys.readouterr().out
    names = {c["Names"][0] for c in await real_engine.list_containers(all=True, filters={"name": prefix})}
    assert names == {f"/{prefix}-kept", f"/{prefix}-gone"}, "listing must not remove anything"

    assert await asyncio.to_thread(orphans.main, ["--db-url", db_url, "--prefix", prefix, "--remove"]) == 0
    assert f"removed: {prefix}-gone" in capsys.readouterr().out
    names = {c["Names"][0] for c in await real_engine.list_containers(all=True, filters={"name": prefix})}
    assert names == {f"/{prefix}-kept"}
