"""Small helpers for the contract suite: bounded waiting, HTTP, tarballs."""

from __future__ import annotations

import asyncio
import inspect
import io
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from fakedocker import BUSYBOX_FILES

#: What busybox httpd serves from /var/www in ``local/busybox:test`` (one source:
#: fakedocker's files, which .ci/make-busybox-rootfs builds the image from).
HTTPD_PAGE: bytes = BUSYBOX_FILES["/var/www/index.html"]
HTTPD_BODY = HTTPD_PAGE.decode().strip()
HTTPD_CMD = ["httpd", "-f", "-p", "8888", "-h", "/var/www"]


async def eventually(
    fn: Callable[[], Any | Awaitable[Any]], timeout: float = 10, interval: float = 0.05
) -> Any:
    """Poll ``fn`` until it returns something truthy; engines settle
    asynchronously (auto-remove, swarm tasks, events), so tests wait for an
    outcome instead of sleeping a guessed time. Exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = fn()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {last!r}")
        await asyncio.sleep(interval)


def _get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


async def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    """GET ``url`` until something answers (a server in a fresh container
    needs a moment to listen); returns status and body."""
    return await eventually(lambda: asyncio.to_thread(_get, url, 2), timeout=timeout, interval=0.1)


def make_tar(files: dict[str, bytes]) -> bytes:
    """A tar archive (for ``put_archive``) with regular files at fixed mtimes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def same_image_ref(seen: str, given: str) -> bool:
    """Podman qualifies short image names (``docker.io/local/x:t``) where
    Docker echoes them as given; both name the same image."""
    def plain(ref: str) -> str:
        for prefix in ("docker.io/library/", "docker.io/", "localhost/"):
            if ref.startswith(prefix):
                return ref[len(prefix) :]
        return ref

    return plain(seen) == plain(given)


def stored_binds(engine_kind: str, binds: list[str]) -> list[str]:
    """``HostConfig.Binds`` as the engine stores ``binds``: Docker keeps them as
    given; Podman drops a trailing ``/`` of the source and adds ``rprivate,rbind``
    (docs/compatibility.md, Podman)."""
    if engine_kind != "podman":
        return list(binds)
    out = []
    for bind in binds:
        source, target, mode = bind.split(":", 2)
        out.append(f"{source.rstrip('/') or '/'}:{target}:{mode},rprivate,rbind")
    return out
