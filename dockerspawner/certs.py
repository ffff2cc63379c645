"""Internal SSL: a server's certificates, staged into a volume of its own."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile

from traitlets import HasTraits, Unicode, default

from .attempt import StartAttempt
from .engine import NotFound

#: Where ``move_certs`` puts a server's internal-SSL certificates in its container.
CERTS_DIR = "/etc/jupyterhub/internal-ssl"


class InternalSSL(HasTraits):
    """``move_certs`` without sharing a host path with the engine."""

    # -- internal SSL ------------------------------------------------------------------------
    move_certs_image = Unicode(
        "",
        config=True,
        help="""The image of the helper container that stages internal-SSL certificates
        into the certs volume. Empty (the default) uses the server's own image, which is
        present already; the helper is never started, so any image works.""",
    )
    certs_volume_name = Unicode(
        config=True,
        help="""Name of the volume that holds a server's internal-SSL certificates, a template like the
        names in volumes. The default, '{prefix}ssl-{username}'
        ('{prefix}ssl-{username}--{servername}' for named servers), gives every server its own.""",
    )

    @default("certs_volume_name")
    def _default_certs_volume_name(self) -> str:
        # 14's name for default servers; named servers get their own
        return "{prefix}ssl-{username}" + ("--{servername}" if self.name else "")

    async def move_certs(self, paths: dict) -> dict:
        """Copy this server's internal-SSL certificates into a per-server volume.

        A helper container (never started) receives the files through
        put_archive, so no host path has to be shared with the engine.
        """
        engine = self.docker_engine
        image = self.move_certs_image or await self._resolve_image()
        self.__dict__["_current_attempt"] = self.__dict__.get("_current_attempt") or StartAttempt(image=image)
        try:
            await self.pull_image(image)
        finally:
            self.__dict__.pop("_current_attempt", None)
        volume = self.format_volume_name(self.certs_volume_name, self)
        await engine.create_volume(volume, labels=self._owner_labels())
        self.__dict__["_certs_volume"] = volume
        self.__dict__["_certs_fresh"] = volume
        try:
            await self._fill_certs_volume(volume, image, paths)
        except BaseException:
            await asyncio.shield(self._remove_certs_volume())
            raise
        return {key: f"{CERTS_DIR}/{os.path.basename(path)}" for key, path in paths.items()}

    async def _fill_certs_volume(self, volume: str, image: str, paths: dict) -> None:
        engine = self.docker_engine
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path in paths.values():
                info = tar.gettarinfo(path, arcname=os.path.basename(path))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
        helper = await engine.create_container(
            {
                "name": f"{volume}-helper",
                "image": image,
                "command": ["true"],
                "labels": self._owner_labels(),
                "host_config": {"binds": {volume: {"bind": CERTS_DIR, "mode": "rw"}}},
            }
        )
        try:
            await engine.put_archive(helper, CERTS_DIR, archive.getvalue())
        finally:
            await asyncio.shield(self._remove_container(helper))

    async def _remove_certs_volume(self) -> None:
        volume = self.__dict__.get("_certs_volume")
        if not volume:
            return
        try:
            await self.docker_engine.remove_volume(volume)
        except NotFound:
            pass
        self.__dict__["_certs_volume"] = None
