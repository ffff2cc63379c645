"""A hub user's system identity -> what their container needs, as pure functions.

SystemUserSpawner runs a server as the user's own account: their uid and gid,
their home bind-mounted in, the env that jupyter/docker-stacks images read to
switch users. The password database is passed in as a lookup function (``pwd``
in production, a dict in tests), so this module does no IO of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .specs import check_confined


class PasswdEntry(Protocol):
    """The fields of a ``pwd.struct_passwd`` this module reads."""

    pw_uid: int
    pw_gid: int
    pw_dir: str


#: ``pwd.getpwnam``, or anything that raises ``KeyError`` for an unknown name.
Lookup = Callable[[str], PasswdEntry]


class NoSystemUser(LookupError):
    """The hub user has no system account, and the spawner needs one."""

    def __init__(self, username: str, need: str) -> None:
        shown = username if len(username) <= 64 else username[:61] + "..."
        super().__init__(
            f"user {shown!r} has no system account (needed for {need}): create one "
            "(e.g. useradd), or let the authenticator store user_id/group_id in the state, "
            "or set host_homedir_format_string"
        )
        self.username = username


@dataclass(frozen=True)
class SystemIdentity:
    """Who the server runs as and where their home is, on the host and in the image."""

    username: str
    uid: int
    gid: int | None
    host_home: str
    image_home: str

    def env(self) -> dict[str, str]:
        """Env for images that switch to ``NB_USER``/``NB_UID`` (docker-stacks);
        ``USER_ID`` is 14's deprecated name of ``NB_UID``."""
        out = {
            "USER": self.username,
            "NB_USER": self.username,
            "USER_ID": str(self.uid),
            "NB_UID": str(self.uid),
            "HOME": self.image_home,
        }
        if self.gid is not None:
            out["NB_GID"] = str(self.gid)
        return out

    def home_bind(self, propagation: str = "") -> dict[str, dict[str, str]]:
        """The home directory as docker-py ``binds`` (one entry: mounted once)."""
        bind = {"bind": self.image_home, "mode": "rw"}
        if propagation:
            bind["propagation"] = propagation
        return {self.host_home: bind}

    def user(self, run_as_root: bool = False) -> str:
        """The container's ``user``: ``uid:gid``, or ``0`` when the image itself
        switches to ``NB_UID`` (``run_as_root``)."""
        if run_as_root:
            return "0"
        return f"{self.uid}:{self.gid}" if self.gid is not None else str(self.uid)

    def create_kwargs(self, run_as_root: bool = False) -> dict[str, Any]:
        """``create_container`` keywords: working dir = home, the user to run as."""
        return {"working_dir": self.image_home, "user": self.user(run_as_root)}


def _render(template: str, username: str) -> str:
    """A home path for ``username``; a name that would leave its directory is refused."""
    return check_confined(template, template.format(username=username))


def _lookup(lookup: Lookup, username: str, need: str) -> PasswdEntry:
    try:
        return lookup(username)
    except KeyError:
        raise NoSystemUser(username, need) from None


def system_identity(
    username: str,
    lookup: Lookup,
    *,
    host_homedir_format_string: str | None = "/home/{username}",
    image_homedir_format_string: str = "/home/{username}",
    user_id: int = -1,
    group_id: int = -1,
) -> SystemIdentity:
    """The identity of ``username`` from the traits and the password database.

    ``user_id``/``group_id`` of 0 or more (kept in the spawner's state, or
    written there by an authenticator) win over the database, so a hub that
    is not on the users' machine still works; the database is asked only for
    what is missing. An empty ``host_homedir_format_string`` means the home
    from the database.
    """
    entry: PasswdEntry | None = None

    def entry_for(need: str) -> PasswdEntry:
        nonlocal entry
        if entry is None:
            entry = _lookup(lookup, username, need)
        return entry

    uid = user_id if user_id >= 0 else entry_for("its uid").pw_uid
    if group_id >= 0:
        gid: int | None = group_id
    elif user_id >= 0:
        try:  # a uid from the state and no account here: run without a group
            gid = entry_for("its gid").pw_gid
        except NoSystemUser:
            gid = None
    else:
        gid = entry_for("its gid").pw_gid
    if host_homedir_format_string:
        host_home = _render(host_homedir_format_string, username)
    else:
        host_home = entry_for("its home directory").pw_dir
    return SystemIdentity(
        username=username,
        uid=uid,
        gid=gid,
        host_home=host_home,
        image_home=_render(image_homedir_format_string, username),
    )
