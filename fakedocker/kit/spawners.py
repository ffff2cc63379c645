"""Spawners without a hub process: ``make_spawner`` and ``start_spawner``.

A spawner made here has a real JupyterHub ``User`` (in-memory database, with
admin flag and groups) and is bound to an engine, so a test can call
``start``/``poll``/``stop`` and look at what reached the engine.
``start_spawner`` does what the hub does around ``Spawner.start`` (group
overrides and user options where the installed JupyterHub has them, then
``pre_spawn_hook``, then ``start`` under ``start_timeout``);
``spawner.start()`` alone runs none of those hooks, as in JupyterHub.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from jupyterhub import orm
from jupyterhub.objects import Hub
from jupyterhub.user import User
from traitlets.config import Config

from dockerspawner import DockerSpawner

from .engines import is_real

#: The keywords of ``make_spawner`` that are not spawner traits.
OWN_KEYWORDS = ("name", "server_name", "admin", "groups", "user_options", "config", "spawner_class")

#: Traits the factory sets unless the test does (short, so a broken test fails fast).
DEFAULT_TRAITS = {"start_timeout": 20, "http_timeout": 10}
#: A real single-user server takes seconds to start on a busy machine.
REAL_ENGINE_TRAITS = {"start_timeout": 90, "http_timeout": 60}


def check_keywords(spawner_class: type, traits: Mapping[str, Any]) -> None:
    """Refuse a keyword that is neither ours nor a trait of ``spawner_class``
    (a typo would otherwise be a silent no-op, as traitlets only warns)."""
    known = set(spawner_class.class_trait_names())
    for key in traits:
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known | set(OWN_KEYWORDS)), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"make_spawner() got an unknown keyword {key[:60]!r}: it is not a trait of "
            f"{spawner_class.__name__} nor one of {', '.join(OWN_KEYWORDS[1:])}{hint}"
        )


def as_config(config: Config | Mapping[str, Any] | None) -> Config:
    """A traitlets ``Config`` from a ``Config``, a nested dict
    (``{"DockerSpawner": {"mem_limit": "1G"}}``) or None."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a traitlets Config or a dict of sections, not {type(config).__name__}")
    return Config(dict(config))


class SpawnerFactory:
    """``make_spawner(name, server_name="", *, admin=False, groups=(),
    user_options=None, config=None, spawner_class=DockerSpawner, **traits)``.

    One factory per test: users are made once and shared by their servers;
    ``close()`` releases the database.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.db = orm.new_session_factory("sqlite:///:memory:")()
        self.users: dict[str, User] = {}

    def _hub(self) -> Hub:
        """The hub the servers are told about: on a real engine, a stub of its
        API that the real single-user server can reach (it exits without one)."""
        stub = getattr(self.engine, "hub_stub", None) if is_real(self.engine) else None
        if stub is None:
            return Hub()
        return Hub(ip=stub.ip, port=stub.port, base_url="/hub/")

    def _user(self, name: str, admin: bool, groups: Iterable[str]) -> User:
        user = self.users.get(name)
        if user is None:
            orm_user = orm.User(name=name)
            self.db.add(orm_user)
            self.db.commit()
            user = self.users[name] = User(orm_user, {"hub": self._hub(), "db": self.db})
        user.orm_user.admin = bool(admin)
        for group_name in groups:
            group = orm.Group.find(self.db, group_name) or orm.Group(name=group_name)
            if group not in user.orm_user.groups:
                user.orm_user.groups.append(group)
        self.db.commit()
        return user

    def __call__(
        self,
        name: str,
        server_name: str = "",
        *,
        admin: bool = False,
        groups: Iterable[str] = (),
        user_options: Mapping[str, Any] | None = None,
        config: Config | Mapping[str, Any] | None = None,
        spawner_class: type = DockerSpawner,
        **traits: Any,
    ) -> Any:
        if not isinstance(name, str) or not name:
            raise TypeError(f"make_spawner() needs a user name (a non-empty str), not {name!r:.60}")
        if isinstance(groups, str):
            raise TypeError(f"groups must be a list of group names, not the string {groups[:60]!r}")
        check_keywords(spawner_class, traits)
        user = self._user(name, admin, groups)
        if server_name not in user.orm_spawners:
            self.db.add(orm.Spawner(user=user.orm_user, name=server_name))
            self.db.commit()
        traits.setdefault("engine", self.engine)
        for key, value in (REAL_ENGINE_TRAITS if is_real(traits["engine"]) else DEFAULT_TRAITS).items():
            traits.setdefault(key, value)
        spawner = user._new_spawner(server_name, spawner_class=spawner_class, config=as_config(config), **traits)
        if user_options is not None:
            spawner.user_options = dict(user_options)
        return spawner

    def close(self) -> None:
        self.db.close()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def start_spawner(spawner: Any, *, progress: list[dict] | None = None) -> str:
    """Start ``spawner`` as ``User.spawn`` does, without a hub: the installed
    JupyterHub's group overrides and ``apply_user_options`` where it has them,
    then ``pre_spawn_hook``, then ``start()`` under ``start_timeout``. Returns
    the URL ``start()`` gave. Errors are the spawner's (``e.jupyterhub_message``
    is what the user would see). With a list as ``progress``, the spawner's
    progress stream is followed while it starts, as the hub's progress API
    does, and its events are appended to it."""
    if hasattr(spawner, "apply_group_overrides"):
        await _maybe_await(spawner.apply_group_overrides())
    if hasattr(spawner, "_run_apply_user_options"):
        await _maybe_await(spawner._run_apply_user_options(spawner.user_options))
    await _maybe_await(spawner.run_pre_spawn_hook())
    follower = None
    if progress is not None:
        follower = asyncio.ensure_future(_follow_progress(spawner, progress))
        await asyncio.sleep(0)  # it opens the stream before start() emits its first event
    try:
        url = await asyncio.wait_for(_maybe_await(spawner.start()), timeout=spawner.start_timeout)
    finally:
        if follower is not None:
            await _end_follower(follower)
    if follower is not None and not follower.cancelled():
        follower.result()  # a broken stream fails a start that worked
    if not isinstance(url, str):
        ip, port = url
        url = f"http://{ip}:{int(port)}"
    return url


async def _follow_progress(spawner: Any, into: list[dict]) -> None:
    async for event in spawner.progress():
        into.append(event)


async def _end_follower(follower: asyncio.Future, grace: float = 5) -> None:
    """The stream ends when the start does; one that does not is cancelled
    after ``grace`` seconds."""
    await asyncio.wait([follower], timeout=grace)
    if not follower.done():
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def stop_spawner(spawner: Any, now: bool = False) -> None:
    """Stop ``spawner`` as the hub does: ``stop()``, then ``post_stop_hook``."""
    await _maybe_await(spawner.stop(now=now))
    await _maybe_await(spawner.run_post_stop_hook())


def user_message(error: BaseException) -> str:
    """What JupyterHub shows the user for a failed spawn: the error's
    ``jupyterhub_message`` when it has one, else its text (the admin's log
    line is the spawner error's ``detail``)."""
    return str(getattr(error, "jupyterhub_message", None) or error)
