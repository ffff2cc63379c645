"""File trees that simulated programs read and ``put_archive`` writes.

A container sees its image's files, its own writable layer on top, and
mounts (named volumes, binds) at their destinations. Nothing here touches
the host's files except reading (never writing) a bind's source.

Every path has an owner and a mode (``Meta``); ``ContainerFS.denied`` says
why a user may not write a path, as the kernel would: a read-only mount or
root filesystem, or missing write permission for a user other than root.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
from typing import NamedTuple

READ_ONLY = "Read-only file system"
PERMISSION = "Permission denied"


class Meta(NamedTuple):
    """Owner and permission bits of one path."""

    uid: int = 0
    gid: int = 0
    mode: int = 0o644


ROOT_DIR = Meta(0, 0, 0o755)
ROOT_FILE = Meta(0, 0, 0o644)
#: Directories that are not root's 0755 in a busybox-like image.
DEFAULT_DIRS = {"/tmp": Meta(0, 0, 0o1777)}


def may_write(meta: Meta, uid: int, gid: int) -> bool:
    if uid == 0:
        return True
    if meta.uid == uid:
        return bool(meta.mode & 0o200)
    if meta.gid == gid:
        return bool(meta.mode & 0o020)
    return bool(meta.mode & 0o002)


def norm(path: str, cwd: str = "/") -> str:
    return posixpath.normpath(posixpath.join(cwd or "/", path)) if path else posixpath.normpath(cwd or "/")


def _parents(path: str) -> list[str]:
    out = []
    while path not in ("/", ""):
        path = posixpath.dirname(path)
        out.append(path or "/")
    return out


class FileStore:
    """An in-memory tree: files with contents, and directories."""

    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        dirs: set[str] | None = None,
        meta: dict[str, Meta] | None = None,
    ) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.dirs: set[str] = set(dirs or {"/"}) | {"/"}
        self.meta: dict[str, Meta] = dict(meta or {})

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write(self, path: str, data: bytes, owner: Meta | None = None) -> None:
        if owner is not None or path not in self.files:
            self.meta[path] = owner or ROOT_FILE
        self.files[path] = data
        self.dirs.update(_parents(path))

    def mkdir(self, path: str, owner: Meta | None = None) -> None:
        if path not in self.dirs or owner is not None:
            self.meta[path] = owner or DEFAULT_DIRS.get(path, ROOT_DIR)
        self.dirs.add(path)
        self.dirs.update(_parents(path))

    def stat(self, path: str) -> Meta | None:
        if path in self.meta:
            return self.meta[path]
        if path in self.dirs:
            return DEFAULT_DIRS.get(path, ROOT_DIR)
        return ROOT_FILE if path in self.files else None

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def is_empty(self) -> bool:
        return not self.files and self.dirs <= {"/"}

    def listdir(self, path: str) -> set[str]:
        prefix = path.rstrip("/") + "/"
        names = set()
        for p in list(self.files) + list(self.dirs):
            if p.startswith(prefix) and p != prefix:
                names.add(p[len(prefix) :].split("/", 1)[0])
        return names


class HostStore(FileStore):
    """A bind mount: reads fall through to the host path, writes stay here."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def _host(self, path: str) -> str:
        return os.path.join(self.source, path.lstrip("/"))

    def read(self, path: str) -> bytes | None:
        data = super().read(path)
        if data is not None:
            return data
        host = self._host(path)
        try:
            if os.path.isfile(host):
                with open(host, "rb") as f:
                    return f.read(16 * 1024 * 1024)
        except OSError:
            return None
        return None

    def is_dir(self, path: str) -> bool:
        return super().is_dir(path) or os.path.isdir(self._host(path))

    def listdir(self, path: str) -> set[str]:
        names = super().listdir(path)
        try:
            names.update(os.listdir(self._host(path)))
        except OSError:
            pass
        return names

    def stat(self, path: str) -> Meta | None:
        if path in self.meta or path in self.files:
            return super().stat(path)
        try:
            st = os.stat(self._host(path))
        except OSError:
            return super().stat(path)
        return Meta(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


class ContainerFS:
    """What a container sees at each path."""

    def __init__(
        self,
        image_files: dict[str, bytes],
        image_dirs: set[str],
        image_meta: dict[str, Meta] | None = None,
        read_only: bool = False,
    ) -> None:
        self.image = FileStore(image_files, image_dirs, image_meta)
        self.layer = FileStore()
        self.read_only = read_only
        #: (destination, store, read-only), longest destination first
        self.mounts: list[tuple[str, FileStore, bool]] = []

    def mount(self, dest: str, store: FileStore, *, read_only: bool = False, copy_in: bool = True) -> None:
        dest = norm(dest)
        if copy_in and store.is_empty() and not isinstance(store, HostStore):
            # The engine copies the image's content (and its owners) into an
            # empty named volume the first time it is mounted, unless NoCopy.
            prefix = dest.rstrip("/") + "/"
            for path, data in self.image.files.items():
                if path.startswith(prefix):
                    store.write("/" + path[len(prefix) :], data, self.image.stat(path))
            for d in self.image.dirs:
                if d.startswith(prefix):
                    store.mkdir("/" + d[len(prefix) :], self.image.stat(d))
            if self.image.is_dir(dest):
                store.meta["/"] = self.image.stat(dest) or ROOT_DIR
        self.mounts.append((dest, store, read_only))
        self.mounts.sort(key=lambda m: len(m[0]), reverse=True)
        self.layer.mkdir(dest)

    def _route(self, path: str) -> tuple[FileStore | None, str]:
        store, rel, _ = self._route_ro(path)
        return store, rel

    def _route_ro(self, path: str) -> tuple[FileStore | None, str, bool]:
        for dest, store, ro in self.mounts:
            if path == dest:
                return store, "/", ro
            if path.startswith(dest.rstrip("/") + "/"):
                return store, "/" + path[len(dest.rstrip("/")) + 1 :], ro
        return None, path, self.read_only

    def stat(self, path: str) -> Meta | None:
        store, rel = self._route(path)
        if store is not None:
            return store.stat(rel)
        return self.layer.stat(path) if path in self.layer.meta else self.image.stat(path) or self.layer.stat(path)

    def read_only_at(self, path: str) -> str | None:
        """The engine's refusal of ``put_archive`` under ``path``, if read-only."""
        store, _, ro = self._route_ro(path)
        if not ro:
            return None
        return "mounted volume is marked read-only" if store is not None else "container rootfs is marked read-only"

    def denied(self, path: str, uid: int, gid: int) -> str | None:
        """Why ``uid``:``gid`` may not create or write ``path`` (None: it may)."""
        if path == "/dev/null":
            return None
        _, _, ro = self._route_ro(path)
        if ro:
            return READ_ONLY
        target = self.stat(path) if self.read(path) is not None else self.stat(posixpath.dirname(path) or "/")
        if target is not None and not may_write(target, uid, gid):
            return PERMISSION
        return None

    def read(self, path: str) -> bytes | None:
        store, rel = self._route(path)
        if store is not None:
            return store.read(rel)
        data = self.layer.read(path)
        return data if data is not None else self.image.read(path)

    def write(self, path: str, data: bytes, owner: Meta | None = None) -> None:
        store, rel = self._route(path)
        if store is None and owner is None and path not in self.layer.files:
            owner = self.image.meta.get(path)
        (store or self.layer).write(rel, data, owner)

    def mkdir(self, path: str, owner: Meta | None = None) -> None:
        store, rel = self._route(path)
        if store is None and owner is None and self.image.is_dir(path):
            return
        (store or self.layer).mkdir(rel, owner)

    def is_dir(self, path: str) -> bool:
        store, rel = self._route(path)
        if store is not None:
            return store.is_dir(rel)
        return self.layer.is_dir(path) or self.image.is_dir(path)

    def exists(self, path: str) -> bool:
        return self.is_dir(path) or self.read(path) is not None

    def listdir(self, path: str) -> list[str]:
        store, rel = self._route(path)
        if store is not None:
            names = store.listdir(rel)
        else:
            names = self.layer.listdir(path) | self.image.listdir(path)
        prefix = path.rstrip("/") + "/"
        for dest, _, _ in self.mounts:
            if dest.startswith(prefix):
                names.add(dest[len(prefix) :].split("/", 1)[0])
        return sorted(names)

    def extract(self, dest: str, data: bytes) -> None:
        """Unpack a tar archive under ``dest`` (members that would escape it
        are skipped, as the engine refuses them)."""
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar.getmembers():
                target = norm(member.name, dest)
                if not (target == dest or target.startswith(dest.rstrip("/") + "/")):
                    continue
                owner = Meta(member.uid, member.gid, stat.S_IMODE(member.mode))
                if member.isdir():
                    self.mkdir(target, owner)
                elif member.isfile():
                    f = tar.extractfile(member)
                    self.write(target, f.read() if f else b"", owner)
                elif member.issym() or member.islnk():
                    linked = self.read(norm(member.linkname, posixpath.dirname(target)))
                    if linked is not None:
                        self.write(target, linked)
