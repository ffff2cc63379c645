"""SystemUserSpawner: each server runs as its hub user's system account.

Only the spec changes: uid and gid from the password database (or the saved
state), the home directory bind-mounted in, docker-stacks' NB_* variables.
The lifecycle is DockerSpawner's.
"""

from __future__ import annotations

import pwd
from typing import Any

from traitlets import Bool, Integer, Unicode

from .dockerspawner import DockerSpawner, SpawnError
from .system_user import NoSystemUser, SystemIdentity, system_identity


class SystemUserSpawner(DockerSpawner):
    """A DockerSpawner whose containers run as the hub user's system identity."""

    host_homedir_format_string = Unicode(
        "/home/{username}",
        config=True,
        help="""Where the user's home directory is on the host, with {username} (the hub
        user's name). Empty: the home directory from the password database.""",
    )
    image_homedir_format_string = Unicode(
        "/home/{username}",
        config=True,
        help="""Where the home directory is mounted in the container, with {username}; it is
        also the container's working directory and HOME.""",
    )
    homedir_bind_propagation = Unicode(
        "",
        config=True,
        help="""Bind propagation of the home directory mount ('rprivate', 'rshared',
        'rslave', ...); empty: the engine's default.""",
    )
    run_as_root = Bool(
        False,
        config=True,
        help="""Start the container as root and let the image switch to NB_UID/NB_GID (as
        jupyter/docker-stacks images do). Off: the container runs as the user's uid:gid.""",
    )
    user_id = Integer(
        -1,
        help="""The user's uid; -1: from the password database at start. Kept in the saved
        state, so an authenticator may set it for users the hub machine does not know.""",
    )
    group_id = Integer(
        -1,
        help="""The user's gid; -1: from the password database at start. Kept in the saved
        state like user_id.""",
    )

    def _identity(self) -> SystemIdentity:
        # one password-database lookup per start, not one per hook that needs it
        attempt = self.__dict__.get("_current_attempt")
        cached = self.__dict__.get("_identity_of_attempt")
        if attempt is not None and cached is not None and cached[0] is attempt:
            return cached[1]
        try:
            identity = system_identity(
                self.user.name,
                pwd.getpwnam,
                host_homedir_format_string=self.host_homedir_format_string,
                image_homedir_format_string=self.image_homedir_format_string,
                user_id=self.user_id,
                group_id=self.group_id,
            )
        except NoSystemUser as e:
            raise SpawnError(
                "Your account has no system user on this hub; please ask an administrator.",
                f"{type(self).__name__}: {e}",
            ) from None
        except ValueError as e:
            raise SpawnError(
                "Your user name cannot be used as a home directory on this hub.",
                f"{type(self).__name__}: {e}; fix host_homedir_format_string / image_homedir_format_string",
            ) from None
        self.user_id = identity.uid
        if identity.gid is not None:
            self.group_id = identity.gid
        if attempt is not None:
            self.__dict__["_identity_of_attempt"] = (attempt, identity)
        return identity

    @property
    def host_homedir(self) -> str:
        """The home directory on the host (14's name)."""
        return self._identity().host_home

    @property
    def homedir(self) -> str:
        """The home directory in the container (14's name)."""
        return self._identity().image_home

    @property
    def volume_binds(self) -> dict:
        binds = super().volume_binds
        identity = self._identity()
        if not any(b.get("bind") == identity.image_home for b in binds.values()):
            binds.update(identity.home_bind(self.homedir_bind_propagation))  # mounted once
        return binds

    def get_env(self) -> dict:
        env = super().get_env()
        env.update(self._identity().env())
        return env

    def _default_create_kwargs(self) -> dict[str, Any]:
        identity = self._identity()
        return identity.create_kwargs(self.run_as_root)

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        if "user_id" in state:
            self.user_id = state["user_id"]
        if "group_id" in state:
            self.group_id = state["group_id"]

    def get_state(self) -> dict:
        state = super().get_state()
        if self.user_id >= 0:
            state["user_id"] = self.user_id
        if self.group_id >= 0:
            state["group_id"] = self.group_id
        return state
