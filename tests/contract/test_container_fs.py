"""Contract: what a container's programs may write: read-only mounts and
root filesystems, and owners and modes for a user other than root."""

from __future__ import annotations

import os

import pytest

from dockerspawner.engine import EngineError

pytestmark = pytest.mark.engine

RO = "Read-only file system"
DENIED = "Permission denied"


@pytest.fixture
def run_script(engine, make_container):
    """``await run_script(script, **spec)`` -> (exit code, logs) of ``sh -c script``;
    logs are stderr then stdout (the engine interleaves the two streams as
    they arrive, so only each stream's own order is defined)."""

    async def run(script: str, **spec):
        cid = await make_container(["sh", "-c", script], start=True, **spec)
        code = await engine.wait_container(cid, timeout=10)
        err = await engine.container_logs(cid, stdout=False)
        out = await engine.container_logs(cid, stderr=False)
        return code, err + out

    run.engine_kind = engine.engine_kind
    return run


def _bind(source: str, target: str, ro: bool = False) -> dict:
    return {"binds": [f"{source}:{target}{':ro' if ro else ''}"]}


@pytest.fixture
def new_volume(engine, unique_name, test_labels):
    """``await new_volume(suffix)`` -> the name of a fresh volume with this run's
    labels (a volume a bind creates has none, so cleanup would miss it)."""

    async def make(suffix: str) -> str:
        name = unique_name(suffix)
        await engine.create_volume(name, labels=test_labels)
        return name

    return make


@pytest.fixture
def host_dir(tmp_path):
    path = tmp_path / "bind"
    path.mkdir()
    os.chmod(path, 0o755)
    return path


async def test_read_only_bind(run_script, host_dir):
    assert await run_script("echo x > /data/f", host_config=_bind(str(host_dir), "/data", ro=True)) == (
        1,
        f"sh: can't create /data/f: {RO}\n",
    )
    assert list(host_dir.iterdir()) == []


async def test_read_only_named_volume_bind(run_script, new_volume):
    assert await run_script("echo x > /data/f", host_config=_bind(await new_volume("rovol"), "/data", ro=True)) == (
        1,
        f"sh: can't create /data/f: {RO}\n",
    )


async def test_read_only_mount_entry(run_script, new_volume):
    mount = {"Type": "volume", "Source": await new_volume("romount"), "Target": "/data", "ReadOnly": True}
    assert await run_script("touch /data/f", host_config={"mounts": [mount]}) == (1, f"touch: /data/f: {RO}\n")


async def test_read_only_root_filesystem(run_script):
    code, logs = await run_script(
        "echo x > /f; echo x > /tmp/f; mkdir /x; touch /y; echo x > /dev/null && echo devnull-ok",
        host_config={"read_only": True},
    )
    assert code == 0
    # Podman difference (docs/compatibility.md): a read-only root keeps a tmpfs on /tmp
    tmp = "" if run_script.engine_kind == "podman" else f"sh: can't create /tmp/f: {RO}\n"
    assert logs == (
        f"sh: can't create /f: {RO}\n{tmp}"
        f"mkdir: can't create directory '/x': {RO}\ntouch: /y: {RO}\ndevnull-ok\n"
    )


async def test_read_only_root_keeps_writable_mounts(run_script, new_volume):
    code, logs = await run_script(
        "echo x > /data/f && cat /data/f", user="0", host_config={"read_only": True, **_bind(await new_volume("rw"), "/data")}
    )
    assert (code, logs) == (0, "x\n")


async def test_put_archive_refuses_read_only_targets(engine, make_container, new_volume):
    from .helpers import make_tar

    tar = make_tar({"f": b"x"})
    rootfs = await make_container(host_config={"read_only": True})
    if engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): the archive API ignores read-only
        await engine.put_archive(rootfs, "/", tar)
        volume = await make_container(host_config=_bind(await new_volume("ro"), "/data", ro=True))
        await engine.put_archive(volume, "/data", tar)
        return
    with pytest.raises(EngineError) as info:
        await engine.put_archive(rootfs, "/tmp", tar)
    assert (info.value.status, info.value.explanation) == (500, "container rootfs is marked read-only")
    volume = await make_container(host_config=_bind(await new_volume("ro"), "/data", ro=True))
    with pytest.raises(EngineError) as info:
        await engine.put_archive(volume, "/data", tar)
    assert (info.value.status, info.value.explanation) == (500, "mounted volume is marked read-only")
    await engine.put_archive(volume, "/tmp", tar)


async def test_non_root_user_cannot_write_root_owned_directories(run_script):
    code, logs = await run_script(
        "echo x > /etc/f; echo rc=$?; touch /etc/g; mkdir /etc/h; echo x > /tmp/ok && cat /tmp/ok; "
        "echo mine > /home/jovyan/f && cat /home/jovyan/f",
        user="1000",
    )
    assert code == 0
    assert logs == (
        f"sh: can't create /etc/f: {DENIED}\ntouch: /etc/g: {DENIED}\n"
        f"mkdir: can't create directory '/etc/h': {DENIED}\nrc=1\nx\nmine\n"
    )


async def test_non_root_user_cannot_write_a_fresh_named_volume(run_script, new_volume):
    result = await run_script("echo x > /data/f", user="1000", host_config=_bind(await new_volume("fresh"), "/data"))
    if run_script.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): a fresh volume is chowned to the user
        assert result == (0, "")
        return
    assert result == (1, f"sh: can't create /data/f: {DENIED}\n")


async def test_engine_created_working_dir_is_root_owned(run_script, unique_name):
    wd = f"/{unique_name('wd')}"
    result = await run_script("pwd; echo x > f", user="1000", working_dir=wd)
    if run_script.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): it creates WorkingDir owned by the user
        assert result == (0, f"{wd}\n")
        return
    assert result == (1, f"sh: can't create f: {DENIED}\n{wd}\n")


async def test_bind_keeps_the_host_owner(run_script, host_dir):
    script = "echo x > /data/f && cat /data/f"
    assert await run_script(script, user="1000", host_config=_bind(str(host_dir), "/data")) == (
        1,
        f"sh: can't create /data/f: {DENIED}\n",
    )
    os.chown(host_dir, 1000, 100)
    assert await run_script(script, user="1000", host_config=_bind(str(host_dir), "/data")) == (0, "x\n")


@pytest.mark.usefixtures("docker_only")
async def test_exec_as_missing_user_or_in_missing_workdir_fails_126(engine, make_container):
    cid = await make_container(start=True)
    missing_user = await engine.exec_run(cid, ["id"], user="no-such-user")
    assert (missing_user.exit_code, missing_user.stderr) == (126, b"")
    # the engine sometimes loses this message (its exec output races the exit)
    assert missing_user.stdout in (b"", b"unable to find user no-such-user: no matching entries in passwd file\r\n")
    missing_dir = await engine.exec_run(cid, ["pwd"], workdir="/no-such-dir")
    assert missing_dir.exit_code == 126
    assert missing_dir.stdout == (
        b'OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd ("/no-such-dir") '
        b"set in config.json failed: no such file or directory: unknown\r\n"
    )
    as_user = await engine.exec_run(cid, ["sh", "-c", "echo x > /etc/f"], user="1000")
    assert (as_user.exit_code, as_user.stderr) == (1, f"sh: can't create /etc/f: {DENIED}\n".encode())
