"""Table tests of the system identity builder: traits + a password database in, container settings out."""

from __future__ import annotations

import pwd
from types import SimpleNamespace
from typing import Any

import pytest

from dockerspawner.system_user import NoSystemUser, SystemIdentity, system_identity

PASSWD = {
    "alice": SimpleNamespace(pw_uid=1001, pw_gid=1002, pw_dir="/srv/home/alice"),
    "bob": SimpleNamespace(pw_uid=1003, pw_gid=100, pw_dir="/home/bob"),
}


def lookup(name: str) -> Any:
    return PASSWD[name]


@pytest.mark.parametrize(
    "name, traits, expected",
    [
        ("alice", {}, SystemIdentity("alice", 1001, 1002, "/home/alice", "/home/alice")),
        ("alice", {"host_homedir_format_string": ""}, SystemIdentity("alice", 1001, 1002, "/srv/home/alice", "/home/alice")),
        ("alice", {"host_homedir_format_string": None}, SystemIdentity("alice", 1001, 1002, "/srv/home/alice", "/home/alice")),
        (
            "bob",
            {"host_homedir_format_string": "/data/{username}", "image_homedir_format_string": "/home/jovyan"},
            SystemIdentity("bob", 1003, 100, "/data/bob", "/home/jovyan"),
        ),
        # ids kept in the state (or written by an authenticator) win over the database
        ("alice", {"user_id": 2000, "group_id": 3000}, SystemIdentity("alice", 2000, 3000, "/home/alice", "/home/alice")),
        ("alice", {"user_id": 2000}, SystemIdentity("alice", 2000, 1002, "/home/alice", "/home/alice")),
        # ... and need no account on the hub's machine at all
        ("carol", {"user_id": 2000, "group_id": 3000}, SystemIdentity("carol", 2000, 3000, "/home/carol", "/home/carol")),
        ("carol", {"user_id": 2000}, SystemIdentity("carol", 2000, None, "/home/carol", "/home/carol")),
    ],
)
def test_identity(name, traits, expected):
    assert system_identity(name, lookup, **traits) == expected


def test_env_bind_and_user():
    ident = system_identity("alice", lookup, host_homedir_format_string="")
    assert ident.env() == {
        "USER": "alice",
        "NB_USER": "alice",
        "USER_ID": "1001",
        "NB_UID": "1001",
        "NB_GID": "1002",
        "HOME": "/home/alice",
    }
    assert ident.home_bind() == {"/srv/home/alice": {"bind": "/home/alice", "mode": "rw"}}
    assert ident.home_bind("rshared") == {"/srv/home/alice": {"bind": "/home/alice", "mode": "rw", "propagation": "rshared"}}
    assert ident.create_kwargs() == {"working_dir": "/home/alice", "user": "1001:1002"}
    assert ident.create_kwargs(run_as_root=True) == {"working_dir": "/home/alice", "user": "0"}


def test_uid_only_runs_without_a_group():
    ident = system_identity("carol", lookup, user_id=2000)
    assert ident.user() == "2000"
    assert "NB_GID" not in ident.env()


@pytest.mark.parametrize(
    "traits, need",
    [
        ({}, "uid"),
        ({"group_id": 5}, "uid"),
        ({"user_id": 7, "group_id": 5, "host_homedir_format_string": ""}, "home directory"),
    ],
)
def test_no_system_account_is_a_clear_error_naming_the_user(traits, need):
    with pytest.raises(NoSystemUser) as err:
        system_identity("carol", lookup, **traits)
    assert "'carol'" in str(err.value) and need in str(err.value)
    assert err.value.username == "carol"
    assert not isinstance(err.value, KeyError)


def test_long_names_are_not_echoed_unbounded():
    with pytest.raises(NoSystemUser) as err:
        system_identity("x" * 5000, lookup)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize("name", ["../etc", "a/b", ".."])
def test_a_name_cannot_leave_the_home_directory(name):
    with pytest.raises(ValueError):
        system_identity(name, lookup, user_id=1, group_id=1)


def test_real_password_database():
    root = system_identity("root", pwd.getpwnam, host_homedir_format_string="")
    assert (root.uid, root.gid, root.host_home) == (0, 0, pwd.getpwnam("root").pw_dir)
    with pytest.raises(NoSystemUser):
        system_identity("no-such-user-sw-test", pwd.getpwnam)
