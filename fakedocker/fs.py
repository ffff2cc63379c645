"""File trees that simulated programs read and ``put_archive`` writes.

A container sees its image's files, its own writable layer on top, and
mounts (named volumes, binds) at their destinations. Nothing here touches
the host's files except reading (never writing) a bind's source.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile


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

    def __init__(self, files: dict[str, bytes] | None = None, dirs: set[str] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.dirs: set[str] = set(dirs or {"/"}) | {"/"}

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write(self, path: str, data: bytes) -> None:
        self.files[path] = data
        self.dirs.update(_parents(path))

    def mkdir(self, path: str) -> None:
        self.dirs.add(path)
        self.dirs.update(_parents(path))

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


class ContainerFS:
    """What a container sees at each path."""

    def __init__(self, image_files: dict[str, bytes], image_dirs: set[str]) -> None:
        self.image = FileStore(image_files, image_dirs)
        self.layer = FileStore()
        self.mounts: list[tuple[str, FileStore]] = []

    def mount(self, dest: str, store: FileStore) -> None:
        dest = norm(dest)
        if store.is_empty() and not isinstance(store, HostStore):
            # The engine copies the image's content into an empty named
            # volume the first time it is mounted.
            prefix = dest.rstrip("/") + "/"
            for path, data in self.image.files.items():
                if path.startswith(prefix):
                    store.write("/" + path[len(prefix) :], data)
            for d in self.image.dirs:
                if d.startswith(prefix):
                    store.mkdir("/" + d[len(prefix) :])
        self.mounts.append((dest, store))
        self.mounts.sort(key=lambda m: len(m[0]), reverse=True)
        self.layer.mkdir(dest)

    def _route(self, path: str) -> tuple[FileStore | None, str]:
        for dest, store in self.mounts:
            if path == dest:
                return store, "/"
            if path.startswith(dest.rstrip("/") + "/"):
                return store, "/" + path[len(dest.rstrip("/")) + 1 :]
        return None, path

    def read(self, path: str) -> bytes | None:
        store, rel = self._route(path)
        if store is not None:
            return store.read(rel)
        data = self.layer.read(path)
        return data if data is not None else self.image.read(path)

    def write(self, path: str, data: bytes) -> None:
        store, rel = self._route(path)
        (store or self.layer).write(rel, data)

    def mkdir(self, path: str) -> None:
        store, rel = self._route(path)
        (store or self.layer).mkdir(rel)

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
        for dest, _ in self.mounts:
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
                if member.isdir():
                    self.mkdir(target)
                elif member.isfile():
                    f = tar.extractfile(member)
                    self.write(target, f.read() if f else b"")
                elif member.issym() or member.islnk():
                    linked = self.read(norm(member.linkname, posixpath.dirname(target)))
                    if linked is not None:
                        self.write(target, linked)
