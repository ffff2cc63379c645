"""``python -m dockerspawner.orphans`` as an admin runs it (issue 11, §4).

Each run is a real subprocess with the working directory in ``tmp_path/cwd``, so
a database it must not create would show up there. Exit status: 0 none,
1 orphans found, 2 error; errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import dockerspawner
from dockerspawner import orphans

ROOT = Path(dockerspawner.__file__).resolve().parent.parent


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of every run (in-process runs chdir into it too)."""
    path = tmp_path / "cwd"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


def run_cli(cwd: Path, *args: str, timeout: float = 60) -> Result:
    """The real command, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "dockerspawner.orphans", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(cwd: Path, capsys: pytest.CaptureFixture) -> Callable[..., Result]:
    """``main(args)`` in this process (in ``cwd``): quicker, and an uncaught exception fails the test."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = orphans.main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args",
    [
        [],  # the hub's default sqlite:///jupyterhub.sqlite, run from the wrong directory
        ["--db-url", "sqlite:///jupyterhub.sqllite"],  # misspelled
        ["--db-url", "sqlite:///jupyterhub.sqlite", "--remove"],
    ],
    ids=["default", "misspelled", "remove"],
)
def test_missing_database_is_refused_and_not_created(cli, cwd, args):
    result = cli(*args)
    assert_one_line_error(result, "no hub database at", str(cwd))
    assert list(cwd.iterdir()) == [], "the sweep must not create a database"


def test_the_command_refuses_a_missing_database_in_one_line(cwd):
    result = run_cli(cwd, "--remove")
    assert_one_line_error(result, "no hub database at", str(cwd))
    assert list(cwd.iterdir()) == []


def test_in_memory_database_is_refused(cli, cwd):
    assert_one_line_error(cli("--db-url", "sqlite://"), "in-memory")


@pytest.mark.parametrize("content", ["empty", "other-tables"])
def test_database_without_hub_tables_is_refused_and_left_alone(cli, cwd, content):
    path = cwd / "jupyterhub.sqlite"
    if content == "empty":
        path.touch()
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("create table notes (x text)")
    before = path.read_bytes()
    result = cli("--db-url", "sqlite:///jupyterhub.sqlite", "--remove")
    assert_one_line_error(result, "has no JupyterHub tables", "users", "spawners")
    assert path.read_bytes() == before
    assert sorted(p.name for p in cwd.iterdir()) == ["jupyterhub.sqlite"]


def test_unreachable_engine_is_one_line(cli, cwd, hub_db):
    url = hub_db({"alice": {}})
    result = cli("--db-url", url, "--engine", "unix:///nonexistent/ev-docker.sock")
    assert_one_line_error(result, "unix:///nonexistent/ev-docker.sock")
    assert list(cwd.iterdir()) == []


def test_docker_host_is_honoured(cli, cwd, hub_db, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/ev-env.sock")
    assert_one_line_error(cli("--db-url", hub_db({})), "ev-env.sock")


def test_tls_options_must_pair(cli, cwd, hub_db):
    result = cli("--db-url", hub_db({}), "--tls-cert", "client.pem")
    assert_one_line_error(result, "--tls-cert and --tls-key")


def test_tls_options_reach_the_client(cli, cwd, hub_db):
    """A missing CA file is docker-py's TLS error, reported as one line."""
    result = cli("--db-url", hub_db({}), "--engine", "tcp://127.0.0.1:9", "--tls-verify",
                     "--tls-ca", str(cwd / "ca.pem"))
    assert_one_line_error(result, "tcp://127.0.0.1:9")


def write_config(cwd: Path, body: str) -> str:
    path = cwd.parent / "jupyterhub_config.py"
    path.write_text("c = get_config()  # noqa\n" + body)
    return str(path)


def test_config_file_gives_db_engine_and_client_settings(cli, cwd, hub_db):
    url = hub_db({"alice": {}})
    config = write_config(cwd, (
        f"c.JupyterHub.db_url = {url!r}\n"
        "c.DockerSpawner.client_kwargs = {'base_url': 'unix:///nonexistent/ev-from-config.sock'}\n"
    ))
    assert_one_line_error(cli("-f", config), "ev-from-config.sock")
    fake = write_config(cwd, f"c.JupyterHub.db_url = {url!r}\nc.DockerSpawner.engine = 'fake'\n")
    result = cli("-f", fake)
    assert (result.returncode, result.stderr) == (0, ""), result
    assert "no orphaned containers (prefix 'jupyter')" in result.stdout
    assert list(cwd.iterdir()) == []


def test_config_file_errors_are_one_line(cli, cwd, hub_db):
    assert_one_line_error(cli("-f", str(cwd / "nope.py")), "no config file")
    broken = write_config(cwd, "raise RuntimeError('ev broken config')\n")
    assert_one_line_error(cli("-f", broken), "ev broken config")
    other = write_config(cwd, f"c.JupyterHub.db_url = {hub_db({})!r}\nc.JupyterHub.spawner_class = 'simple'\n")
    assert_one_line_error(cli("-f", other), "not a DockerSpawner")


@pytest.mark.real_engine
async def test_lists_then_removes_only_orphans(real_engine, real_test_image, hub_db, make_container, ev_prefix, cwd, cli):
    url = hub_db({"kept": {"": {}}, "named": {"lab": {}}})
    engine_cfg = ""
    if real_engine.engine_kind == "podman":  # DOCKER_HOST names Docker: the config names Podman
        engine_cfg = f"c.DockerSpawner.client_kwargs = {{'base_url': {real_engine.base_url!r}}}\n" \
                     "c.DockerSpawner.use_docker_client_env = False\n"
    config = write_config(cwd, f"c.JupyterHub.db_url = {url!r}\nc.DockerSpawner.prefix = {ev_prefix!r}\n{engine_cfg}")
    result = await asyncio.to_thread(cli, "-f", config)
    assert (result.returncode, result.stderr) == (0, ""), result
    assert f"no orphaned containers (prefix {ev_prefix!r})" in result.stdout

    for suffix, owner in [("kept", ("kept", "")), ("named--lab", ("named", "lab")), ("gone", ("gone", "")),
                          ("named--old", ("named", "old"))]:
        await make_container(real_engine, real_test_image, f"{ev_prefix}-{suffix}", owner)
    orphans = {f"{ev_prefix}-gone", f"{ev_prefix}-named--old"}

    async def names() -> set[str]:
        listed = await real_engine.list_containers(all=True, filters={"name": [ev_prefix]})
        return {c["Names"][0].lstrip("/") for c in listed}

    every = await names()
    await asyncio.sleep(1.05)  # the sweep spares containers created in its own second
    result = run_cli(cwd, "-f", config)
    assert result.returncode == 1, result
    listed = [line for line in result.stdout.splitlines() if line.startswith("orphan ")]
    assert {line.split()[1] for line in listed} == orphans
    assert any("user='named' server='old'" in line and " age " in line and "created" in line for line in listed)
    assert "2 orphaned container(s); run again with --remove" in result.stdout
    assert await names() == every, "a dry run must not remove anything"

    engine_args = ["--engine", real_engine.base_url] if real_engine.engine_kind == "podman" else []
    result = await asyncio.to_thread(cli, "--db-url", url, "--prefix", ev_prefix, "--remove", *engine_args)
    assert result.returncode == 1, result
    assert {line.split()[1] for line in result.stdout.splitlines() if line.startswith("removed ")} == orphans
    assert await names() == every - orphans

    result = await asyncio.to_thread(cli, "-f", config, "--remove")
    assert result.returncode == 0, result
    assert list(cwd.iterdir()) == []
