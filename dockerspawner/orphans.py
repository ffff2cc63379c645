"""Containers that DockerSpawner made but no server of the hub owns any more.

They appear when a user or named server is deleted while its container is kept,
or when a hub crashes mid-spawn. Removing one loses what its user wrote outside
volumes, so ownership is decided by what cannot go stale: the owner labels every
container carries (user name, server name) against the users and servers in the
hub's database. Saved states are no guide on their own: after ``stop()`` a state
is ``{}`` while the stopped container (remove=False) still belongs to its server.
A container whose owner labels are missing is never called an orphan.

The sweep runs at hub start (``DockerSpawner.remove_orphans``) or by hand::

    python -m dockerspawner.orphans -f jupyterhub_config.py            # list
    python -m dockerspawner.orphans -f jupyterhub_config.py --remove   # remove

Exit status: 0 no orphans, 1 orphans found (listed, or with --remove removed),
2 error (no or wrong database, bad config, engine unreachable, a removal failed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sqlite3
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .engine import DockerEngine, EngineError, NotFound
from .naming import LABEL_MANAGED, LABEL_SERVER, LABEL_USER, MANAGED_BY, labels_owner

log = logging.getLogger(__name__)

EXIT_NONE, EXIT_FOUND, EXIT_ERROR = 0, 1, 2
DEFAULT_DB_URL = "sqlite:///jupyterhub.sqlite"  # JupyterHub's own default


class SweepError(Exception):
    """A reason not to sweep at all, worded for the admin (one line)."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- who owns what -----------------------------------------------------------------------------


def owned_refs(states: Iterable[dict | None]) -> set[str]:
    """Container ids and names that saved spawner states point to."""
    refs: set[str] = set()
    for state in states:
        for key in ("object_id", "container_id", "object_name", "container_name"):
            value = (state or {}).get(key)
            if isinstance(value, str) and value:
                refs.add(value)
    return refs


@dataclass(frozen=True)
class Owners:
    """The servers a hub's database says exist: every user's default server, the
    named servers (Spawner rows with a name), and what saved states point to."""

    users: frozenset[str]
    named: frozenset[tuple[str, str]]
    refs: frozenset[str] = frozenset()

    def owns(self, owner: tuple[str, str] | None, ids_and_names: Iterable[str]) -> bool:
        """Whether a container with these owner labels and ids/names is a live server's.

        A user owns their default server ("") whether or not it has a Spawner row
        yet; a named server needs its row. No owner labels: never an orphan.
        """
        if owner is None or any(ref in self.refs for ref in ids_and_names):
            return True
        user, server = owner
        return user in self.users and (server == "" or (user, server) in self.named)


def hub_owners(session: Any) -> Owners:
    """:class:`Owners` from a session on the hub's database (read only).

    Only columns every JupyterHub release has are read, so a database of an
    older or newer hub than the installed one can be swept.
    """
    from jupyterhub import orm
    from sqlalchemy.exc import SAWarning

    users = frozenset(name for (name,) in session.query(orm.User.name))
    named = frozenset(
        (user, server)
        for user, server in session.query(orm.User.name, orm.Spawner.name).join(
            orm.Spawner, orm.Spawner.user_id == orm.User.id
        )
        if server
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # JSONDict has no cache_ok: harmless here
        refs = frozenset(owned_refs(state for (state,) in session.query(orm.Spawner.state)))
    return Owners(users=users, named=named, refs=refs)


def open_hub_db(db_url: str, *, cwd: Path | None = None) -> Any:
    """A read-only session on an existing JupyterHub database, or :class:`SweepError`.

    JupyterHub's own session factory creates a missing sqlite file and its
    tables, which turned a misspelled ``--db-url`` into "every container is an
    orphan"; here a missing file or a database without the hub's tables is refused.
    """
    from jupyterhub import orm
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    try:
        url = make_url(db_url)
    except Exception:
        raise SweepError(f"{_short(db_url)!r} is not a database URL: pass the hub's c.JupyterHub.db_url") from None
    shown = _short(url.render_as_string(hide_password=True))
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or "memory" in str(url.query.get("mode", "")):
            raise SweepError(f"{shown} is an in-memory database: pass the hub's c.JupyterHub.db_url")
        path = Path(url.database).expanduser()
        path = ((cwd or Path.cwd()) / path).resolve() if not path.is_absolute() else path
        if not path.is_file():
            raise SweepError(
                f"no hub database at {_short(str(path))} ({shown}): pass the hub's c.JupyterHub.db_url "
                "with --db-url or its config with -f, from the directory the hub runs in"
            )
        uri = f"file:{quote(str(path))}?mode=ro"
        options["creator"] = lambda: sqlite3.connect(uri, uri=True)
    try:
        engine = create_engine(url, **options)
        tables = set(inspect(engine).get_table_names())
    except Exception as e:
        raise SweepError(f"cannot read the hub database {shown}: {_short(str(e).splitlines()[0], 160)}") from None
    missing = sorted({orm.User.__tablename__, orm.Spawner.__tablename__} - tables)
    if missing:
        engine.dispose()
        raise SweepError(
            f"{shown} has no JupyterHub tables ({', '.join(missing)} missing): is it the hub's database?"
        )
    return Session(engine)


def read_owners(db_url: str, *, cwd: Path | None = None) -> Owners:
    session = open_hub_db(db_url, cwd=cwd)
    try:
        return hub_owners(session)
    except Exception as e:
        raise SweepError(f"cannot read users and servers from the hub database: {_short(str(e), 160)}") from None
    finally:
        bind = session.get_bind()
        session.close()
        bind.dispose()


# -- finding and removing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Orphan:
    """One container the sweep would remove, with what an admin needs to judge it."""

    id: str
    name: str
    labels: dict
    created: float
    state: str

    @classmethod
    def of(cls, listed: dict) -> Orphan:
        names = [n.lstrip("/") for n in listed.get("Names") or []]
        return cls(
            id=listed["Id"],
            name=names[0] if names else listed["Id"][:12],
            labels=dict(listed.get("Labels") or {}),
            created=float(listed.get("Created") or 0),
            state=str(listed.get("State") or "unknown"),
        )

    def describe(self, now: float) -> str:
        user = _short(self.labels.get(LABEL_USER), 40)
        server = _short(self.labels.get(LABEL_SERVER), 40)
        return f"{self.name}  user={user!r} server={server!r}  age {_age(now - self.created)}  {self.state}"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit}{(seconds % size) // subsize}{sub}"
    return f"{seconds}s"


async def find_orphans(
    engine: DockerEngine, owners: Owners, *, prefix: str, created_before: float | None = None
) -> list[Orphan]:
    """Containers labelled as ours, named ``<prefix>-...``, whose owner is not in ``owners``.

    Containers created at or after ``created_before`` are left out: they may
    belong to a spawn whose user or server the database read did not see yet.
    """
    if not isinstance(owners, Owners):
        # the old call passed saved-state refs, which call every stopped container an orphan
        raise TypeError(f"owners must be orphans.Owners (from hub_owners), not {type(owners).__name__}")
    found = []
    for c in await engine.list_containers(all=True, filters={"label": [f"{LABEL_MANAGED}={MANAGED_BY}"]}):
        names = [n.lstrip("/") for n in c.get("Names") or []]
        if not any(n.startswith(f"{prefix}-") for n in names):
            continue
        if created_before is not None and (c.get("Created") or 0) >= created_before:
            continue
        if owners.owns(labels_owner(c.get("Labels")), [c["Id"], *names]):
            continue
        found.append(Orphan.of(c))
    return found


async def remove_one(engine: DockerEngine, orphan: Orphan) -> None:
    try:
        await engine.remove_container(orphan.id, force=True)
    except NotFound:
        pass


async def remove_orphans(
    engine: DockerEngine,
    owners: Owners,
    *,
    prefix: str,
    created_before: float | None = None,
    dry_run: bool = False,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> list[str]:
    """Log every orphan (to ``logger``: the hub's), then unless ``dry_run`` remove them; return their names."""
    found = await find_orphans(engine, owners, prefix=prefix, created_before=created_before)
    now = time.time()
    for orphan in found:
        (logger or log).warning("%s orphaned container %s", "Found" if dry_run else "Removing", orphan.describe(now))
    if not dry_run:
        for orphan in found:
            await remove_one(engine, orphan)
    return [o.name for o in found]


# -- the command -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dockerspawner.orphans",
        description="List (or with --remove remove) containers made by DockerSpawner whose owner "
        "(user, server) is not in the hub's database. Exit status: 0 none, 1 orphans found, 2 error.",
    )
    p.add_argument("-f", "--config", metavar="FILE", help="the hub's jupyterhub_config.py (db_url, engine, prefix)")
    p.add_argument("--db-url", help=f"the hub's database URL (default: the config's, else {DEFAULT_DB_URL})")
    p.add_argument("--prefix", help="DockerSpawner.prefix of this hub (default: the config's, else jupyter)")
    p.add_argument(
        "--engine",
        metavar="URL|KIND",
        help="engine URL (unix://, tcp://, ssh://) or kind ('docker'); default: the config's, else DOCKER_HOST",
    )
    p.add_argument("--tls-verify", action="store_true", help="verify the engine's TLS certificate")
    p.add_argument("--tls-ca", metavar="FILE", help="CA certificate of the engine")
    p.add_argument("--tls-cert", metavar="FILE", help="client certificate")
    p.add_argument("--tls-key", metavar="FILE", help="client key")
    p.add_argument("--remove", action="store_true", help="remove the orphans (default: only list them)")
    return p


def _spawner_class(value: Any) -> type:
    from importlib.metadata import entry_points

    from traitlets.utils.importstring import import_item

    if isinstance(value, type):
        return value
    for ep in entry_points(group="jupyterhub.spawners"):
        if ep.name == value:
            return ep.load()
    return import_item(value)


def load_spawner(config_file: str | None) -> tuple[Any, str]:
    """A spawner configured as the hub would configure it, and the hub's db_url.

    Built from the hub's config so that the engine, client settings and prefix are
    exactly the hub's; no user, no hub, no IO.
    """
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    from .dockerspawner import DockerSpawner

    config = Config()
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise SweepError(f"no config file {_short(config_file)}: pass the hub's jupyterhub_config.py")
        try:
            config = PyFileConfigLoader(path.name, path=str(path.parent.resolve())).load_config()
        except Exception as e:
            raise SweepError(f"cannot load {_short(config_file)}: {type(e).__name__}: {_short(str(e), 160)}") from None
    hub = config.get("JupyterHub", {})
    cls_value = hub.get("spawner_class", DockerSpawner)
    try:
        cls = _spawner_class(cls_value)
    except Exception:
        raise SweepError(f"cannot import the hub's spawner_class {_short(cls_value)}") from None
    if not (isinstance(cls, type) and issubclass(cls, DockerSpawner)):
        raise SweepError(f"the hub's spawner_class {_short(cls_value)} is not a DockerSpawner: nothing to sweep")
    if getattr(cls, "object_type", "container") != "container":
        raise SweepError(f"{cls.__name__} makes {cls.object_type}s: the sweep knows containers only")
    try:
        spawner = cls(config=config)
    except Exception as e:
        raise SweepError(f"the hub's config does not make a {cls.__name__}: {_short(str(e), 160)}") from None
    return spawner, hub.get("db_url", DEFAULT_DB_URL)


def _apply_engine_options(spawner: Any, args: argparse.Namespace) -> None:
    if args.engine:
        if "://" in args.engine:
            spawner.engine = "docker"
            spawner.client_kwargs = {**spawner.client_kwargs, "base_url": args.engine}
        else:
            spawner.engine = args.engine
    tls = dict(spawner.tls_config)
    if args.tls_ca:
        tls["ca_cert"] = args.tls_ca
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SweepError("--tls-cert and --tls-key go together")
        tls["client_cert"] = (args.tls_cert, args.tls_key)
    if args.tls_verify:
        tls["verify"] = args.tls_ca or True
    if tls != spawner.tls_config:
        spawner.tls_config = tls


async def _sweep(spawner: Any, owners: Owners, *, created_before: float, remove: bool) -> int:
    from .engine.connect import forget_engines

    engine = None
    try:
        engine = spawner.docker_engine
        await engine.ping()
        found = await find_orphans(engine, owners, prefix=spawner.prefix, created_before=created_before)
        now = time.time()
        for orphan in found:
            print(f"orphan  {orphan.describe(now)}")
        failed = []
        if remove:
            for orphan in found:
                try:
                    await remove_one(engine, orphan)
                    print(f"removed {orphan.name}")
                except EngineError as e:
                    failed.append(orphan.name)
                    print(f"error: cannot remove {orphan.name}: {_short(str(e), 160)}", file=sys.stderr)
        if not found:
            print(f"no orphaned containers (prefix {spawner.prefix!r})")
        elif remove:
            print(f"{len(found) - len(failed)} of {len(found)} orphaned container(s) removed")
        else:
            print(f"{len(found)} orphaned container(s); run again with --remove to remove them")
        if failed:
            return EXIT_ERROR
        return EXIT_FOUND if found else EXIT_NONE
    except (EngineError, ValueError) as e:
        where = getattr(engine, "base_url", None)
        raise SweepError(f"engine {where or spawner.engine}: {_short(str(e).splitlines()[0], 200)}") from None
    finally:
        for e in {id(x): x for x in [engine, *forget_engines()] if x is not None}.values():
            await e.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        spawner, config_db_url = load_spawner(args.config)
        if args.prefix:
            spawner.prefix = args.prefix
        _apply_engine_options(spawner, args)
        # Containers created from this second on are spared: their users may be
        # newer than what the database read below sees.
        created_before = math.floor(time.time())
        owners = read_owners(args.db_url or config_db_url)
        return asyncio.run(_sweep(spawner, owners, created_before=created_before, remove=args.remove))
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
