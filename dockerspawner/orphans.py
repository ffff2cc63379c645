"""Containers that DockerSpawner made but no server of the hub owns any more.

They appear when a user or named server is deleted while its container is kept,
or when a hub crashes mid-spawn. Finding them is cheap (one labelled list);
removing them is opt-in (``DockerSpawner.remove_orphans``, or
``python -m dockerspawner.orphans --remove``) and logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Iterable

from .engine import DockerEngine, NotFound
from .naming import LABEL_MANAGED, MANAGED_BY

log = logging.getLogger(__name__)


def owned_refs(states: Iterable[dict | None]) -> set[str]:
    """Container ids and names that saved spawner states point to."""
    refs: set[str] = set()
    for state in states:
        for key in ("object_id", "container_id", "object_name", "container_name"):
            value = (state or {}).get(key)
            if value:
                refs.add(value)
    return refs


async def find_orphans(
    engine: DockerEngine, owned: set[str], *, prefix: str, created_before: float | None = None
) -> list[dict]:
    """Managed containers named ``<prefix>-...`` that no state owns.

    Containers created after ``created_before`` are left out, since they may
    belong to a spawn that has not saved its state yet.
    """
    found = []
    for c in await engine.list_containers(all=True, filters={"label": [f"{LABEL_MANAGED}={MANAGED_BY}"]}):
        names = [n.lstrip("/") for n in c.get("Names") or []]
        if c["Id"] in owned or any(n in owned for n in names):
            continue
        if not any(n.startswith(f"{prefix}-") for n in names):
            continue
        if created_before is not None and c.get("Created", 0) >= created_before:
            continue
        found.append(c)
    return found


async def remove_orphans(
    engine: DockerEngine, owned: set[str], *, prefix: str, created_before: float | None = None, dry_run: bool = False
) -> list[str]:
    """Remove (or with ``dry_run`` only list) orphans; return their names."""
    removed = []
    for c in await find_orphans(engine, owned, prefix=prefix, created_before=created_before):
        name = (c.get("Names") or [c["Id"][:12]])[0].lstrip("/")
        labels = c.get("Labels") or {}
        if dry_run:
            log.info("Orphaned container %s (%s, labels %s)", name, c.get("State"), labels)
        else:
            log.warning("Removing orphaned container %s (%s, labels %s)", name, c.get("State"), labels)
            try:
                await engine.remove_container(c["Id"], force=True)
            except NotFound:
                pass
        removed.append(name)
    return removed


def _states_from_db(db_url: str) -> list[dict]:
    from jupyterhub import orm

    session = orm.new_session_factory(db_url)()
    try:
        return [s.state or {} for s in session.query(orm.Spawner)]
    finally:
        session.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dockerspawner.orphans",
        description="List (or remove) containers made by DockerSpawner that no server in the hub's database owns.",
    )
    parser.add_argument("--db-url", default="sqlite:///jupyterhub.sqlite", help="the hub's database URL")
    parser.add_argument("--prefix", default="jupyter", help="DockerSpawner.prefix of this hub")
    parser.add_argument("--remove", action="store_true", help="remove them (default: only list)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    owned = owned_refs(_states_from_db(args.db_url))

    async def run() -> list[str]:
        from .engine.dockerpy import DockerPyEngine

        engine = DockerPyEngine()
        try:
            return await remove_orphans(
                engine, owned, prefix=args.prefix, created_before=time.time(), dry_run=not args.remove
            )
        finally:
            await engine.close()

    names = asyncio.run(run())
    print(f"{len(names)} orphaned container(s){' removed' if args.remove else ''}: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
