"""SystemUserSpawner with real system accounts, on fakedocker and on the real engine.

The test makes its own users (useradd, homes under a temp directory) and
removes them afterwards.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid

import pytest
from traitlets.config import Config

from dockerspawner import SystemUserSpawner

from contract.helpers import stored_binds
from unavailable import require_root

pytestmark = pytest.mark.engine


@pytest.fixture
def system_user(tmp_path):
    """A fresh system account with its home in tmp_path (root only)."""
    require_root("creating system users", "useradd")
    made = []

    def make() -> pwd.struct_passwd:
        name = f"dsu{uuid.uuid4().hex[:8]}"
        home = tmp_path / name
        subprocess.run(["useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/sh", name], check=True)
        os.chmod(home, 0o700)
        made.append(name)
        return pwd.getpwnam(name)

    yield make
    for name in made:
        subprocess.run(["userdel", name], check=False)


async def test_server_runs_as_the_users_uid_with_their_home(spawner_factory, engine, system_user, tmp_path):
    account = system_user()
    spawner = spawner_factory(
        SystemUserSpawner, name=account.pw_name, host_homedir_format_string=str(tmp_path / "{username}")
    )
    await spawner.start()
    info = await engine.inspect_container(spawner.object_id)
    home = f"/home/{account.pw_name}"
    assert info["Config"]["User"] == f"{account.pw_uid}:{account.pw_gid}"
    assert info["Config"]["WorkingDir"] == home
    env = dict(line.split("=", 1) for line in info["Config"]["Env"])
    assert (env["NB_USER"], env["NB_UID"], env["NB_GID"], env["HOME"]) == (
        account.pw_name, str(account.pw_uid), str(account.pw_gid), home,
    )
    binds = info["HostConfig"]["Binds"]
    assert binds == stored_binds(engine.engine_kind, [f"{account.pw_dir}:{home}:rw"])  # mounted once

    ids = await engine.exec_run(spawner.object_id, ["sh", "-c", "id -u; id -g"])
    assert ids.stdout.decode().split() == [str(account.pw_uid), str(account.pw_gid)]
    wrote = await engine.exec_run(spawner.object_id, ["touch", f"{home}/made-by-server"])
    assert wrote.exit_code == 0, wrote.stderr
    if getattr(engine, "engine_kind", "") != "fake":
        made = os.stat(os.path.join(account.pw_dir, "made-by-server"))
        assert (made.st_uid, made.st_gid) == (account.pw_uid, account.pw_gid)
    other = await engine.exec_run(spawner.object_id, ["touch", f"{home}/by-someone-else"], user="54321:54321")
    assert other.exit_code != 0 and b"denied" in (other.stderr + other.stdout).lower()

    state = spawner.get_state()
    assert (state["user_id"], state["group_id"]) == (account.pw_uid, account.pw_gid)
    await spawner.stop()


async def test_run_as_root_and_home_from_the_password_database(spawner_factory, engine, system_user):
    account = system_user()
    spawner = spawner_factory(
        SystemUserSpawner, name=account.pw_name, host_homedir_format_string="", run_as_root=True,
        extra_create_kwargs=lambda sp: {"labels": spawner_factory.labels},  # a callable works too
    )
    await spawner.start()
    info = await engine.inspect_container(spawner.object_id)
    assert info["Config"]["User"] == "0"
    assert info["HostConfig"]["Binds"] == stored_binds(engine.engine_kind, [f"{account.pw_dir}:/home/{account.pw_name}:rw"])
    await spawner.stop()


async def test_user_without_a_system_account_gets_a_clear_error(spawner_factory, engine):
    spawner = spawner_factory(SystemUserSpawner, name="no-such-system-user-here")
    with pytest.raises(Exception) as info:
        await spawner.start()
    assert "no system user" in info.value.jupyterhub_message
    assert "'no-such-system-user-here' has no system account" in info.value.detail
    assert not isinstance(info.value, KeyError)


async def test_uid_and_gid_from_the_state_win(spawner_factory, engine, tmp_path):
    """An authenticator may store them for users the hub machine does not know."""
    spawner = spawner_factory(
        SystemUserSpawner, name="remote-user", host_homedir_format_string=str(tmp_path / "{username}")
    )
    spawner.load_state({"user_id": 4321, "group_id": 765})
    await spawner.start()
    info = await engine.inspect_container(spawner.object_id)
    assert info["Config"]["User"] == "4321:765"
    await spawner.stop()


def test_14_style_config_loads_without_warnings(spawner_factory, caplog):
    caplog.set_level("WARNING")
    cfg = Config()
    cfg.SystemUserSpawner.host_homedir_format_string = "/srv/home/{username}"
    cfg.SystemUserSpawner.image_homedir_format_string = "/home/{username}"
    cfg.SystemUserSpawner.homedir_bind_propagation = "rslave"
    cfg.SystemUserSpawner.run_as_root = False
    cfg.SystemUserSpawner.image = "local/busybox:test"
    spawner = spawner_factory(SystemUserSpawner, config=cfg)
    assert spawner.homedir_bind_propagation == "rslave"
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
