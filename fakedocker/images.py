"""Local images and the registry the fake pulls from.

An image has an id, tags, the engine's ``Config``, layers (digest + size)
and a small file tree that simulated programs read (``cat``, ``httpd``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockerspawner.engine.protocol import Conflict, EngineError, NotFound, PullEvent
from dockerspawner.engine.replay import Replay

from ._util import labels_match, normalize_ref, now_ns, repo_path, rfc3339_nano, split_ref
from .fs import Meta

#: Files every image gets unless ``files`` is given: what the project's
#: ``local/busybox:test`` rootfs has (users for ``id -u``, a page for httpd).
BUSYBOX_FILES: dict[str, bytes] = {
    "/etc/passwd": (
        b"root:x:0:0:root:/root:/bin/sh\n"
        b"nobody:x:65534:65534:nobody:/home:/bin/sh\n"
        b"jovyan:x:1000:100:jovyan:/home/jovyan:/bin/sh\n"
    ),
    "/etc/group": b"root:x:0:\nusers:x:100:\nnogroup:x:65534:\n",
    "/var/www/index.html": b"rig busybox ok\n",
}
BUSYBOX_DIRS = (
    "/",
    "/bin",
    "/dev",
    "/etc",
    "/home",
    "/home/jovyan",
    "/proc",
    "/root",
    "/sys",
    "/tmp",
    "/var",
    "/var/www",
)
#: Owners that differ from root's in the busybox-like tree (jovyan owns its home).
BUSYBOX_META: dict[str, Meta] = {"/home/jovyan": Meta(1000, 100, 0o755)}

#: The size of the busybox rootfs layer on the real engine.
BUSYBOX_LAYER_SIZE = 1_984_305

CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


@dataclass
class Layer:
    digest: str  # sha256:<64 hex> of the (compressed) blob
    size: int

    @property
    def short(self) -> str:
        return self.digest.split(":", 1)[1][:12]


def make_layers(layers: list[Any] | None) -> list[Layer]:
    """Sizes become layers whose digest depends on position and size, so a
    registry image built on the same base as a local one shares its first
    layer (and a pull says ``Already exists``), as real images do."""
    if layers is None:
        layers = [BUSYBOX_LAYER_SIZE]
    out = []
    for i, item in enumerate(layers):
        if isinstance(item, Layer):
            out.append(item)
        elif isinstance(item, dict):
            size = int(item["size"])
            digest = item.get("digest") or _layer_digest(i, size)
            out.append(Layer(digest, size))
        else:
            out.append(Layer(_layer_digest(i, int(item)), int(item)))
    return out


def _layer_digest(index: int, size: int) -> str:
    return "sha256:" + hashlib.sha256(f"fakedocker-layer:{index}:{size}".encode()).hexdigest()


def full_config(config: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(CONFIG_DEFAULTS)
    out.update(config or {})
    return out


@dataclass
class Image:
    id: str
    config: dict[str, Any]
    layers: list[Layer]
    files: dict[str, bytes]
    dirs: set[str]
    tags: list[str] = field(default_factory=list)
    #: owners and modes that are not root's defaults
    meta: dict[str, Meta] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)
    created_ns: int = field(default_factory=now_ns)

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "RepoTags": list(self.tags),
            "RepoDigests": list(self.digests),
            "Parent": "",
            "Comment": "",
            "Created": rfc3339_nano(self.created_ns),
            "Container": "",
            "ContainerConfig": dict(CONFIG_DEFAULTS),
            "DockerVersion": "20.10.24+fakedocker",
            "Author": "",
            "Config": json.loads(json.dumps(self.config)),
            "Architecture": "amd64",
            "Os": "linux",
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": {"Data": None, "Name": "fake"},
            "RootFS": {"Type": "layers", "Layers": [layer.digest for layer in self.layers]},
            "Metadata": {"LastTagTime": rfc3339_nano(self.created_ns)},
        }

    def list_entry(self) -> dict[str, Any]:
        return {
            "Containers": -1,
            "Created": self.created_ns // 1_000_000_000,
            "Id": self.id,
            "Labels": dict(self.config.get("Labels") or {}) or None,
            "ParentId": "",
            "RepoDigests": list(self.digests),
            "RepoTags": list(self.tags),
            "SharedSize": -1,
            "Size": self.size,
            "VirtualSize": self.size,
        }


def image_id_for(config: dict[str, Any], layers: list[Layer]) -> str:
    """Same config and layers give the same id, as content addressing does."""
    blob = json.dumps({"config": config, "layers": [layer.digest for layer in layers]}, sort_keys=True)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def build_image(
    config: dict[str, Any] | None, layers: list[Any] | None, files: dict[str, bytes] | None
) -> Image:
    cfg = full_config(config)
    lays = make_layers(layers)
    tree = dict(BUSYBOX_FILES if files is None else files)
    dirs = set(BUSYBOX_DIRS)
    for path in tree:
        parent = path.rsplit("/", 1)[0] or "/"
        while parent not in dirs:
            dirs.add(parent)
            parent = parent.rsplit("/", 1)[0] or "/"
    if cfg.get("WorkingDir"):
        dirs.add(cfg["WorkingDir"])
    meta = dict(BUSYBOX_META) if files is None else {}
    return Image(id=image_id_for(cfg, lays), config=cfg, layers=lays, files=tree, dirs=dirs, meta=meta)


class ImageStore:
    """The engine's local images, by id, with tags pointing at them."""

    def __init__(self) -> None:
        self.by_id: dict[str, Image] = {}
        self.tags: dict[str, str] = {}  # "repo:tag" -> id

    def add(self, ref: str | None, image: Image) -> Image:
        existing = self.by_id.get(image.id)
        if existing is None:
            self.by_id[image.id] = image
            existing = image
        if ref:
            self.tag(existing, normalize_ref(ref))
        return existing

    def tag(self, image: Image, ref: str) -> None:
        old_id = self.tags.get(ref)
        if old_id == image.id:
            return
        if old_id is not None and old_id in self.by_id:
            old = self.by_id[old_id]
            if ref in old.tags:
                old.tags.remove(ref)
        self.tags[ref] = image.id
        image.tags.append(ref)

    def find(self, ref: str) -> Image | None:
        """By ``repo[:tag]``, ``repo@digest``, full or short id (>= 1 hex)."""
        if not ref:
            return None
        repo, tag, digest = split_ref(ref)
        if digest:
            for image in self.by_id.values():
                if f"{repo}@{digest}" in image.digests:
                    return image
            if not tag:
                return None
        key = f"{repo}:{tag or 'latest'}"
        if key in self.tags:
            return self.by_id.get(self.tags[key])
        hex_part = ref.removeprefix("sha256:")
        if ref.startswith("sha256:") or (hex_part and all(c in "0123456789abcdef" for c in hex_part)):
            matches = [img for iid, img in self.by_id.items() if iid[7:].startswith(hex_part)]
            if len(matches) == 1:
                return matches[0]
        return None

    def get(self, ref: str) -> Image:
        image = self.find(ref)
        if image is None:
            raise NotFound(f"no such image: {ref}: No such image: {normalize_ref(ref)}")
        return image

    def untag(self, ref: str) -> Image | None:
        key = normalize_ref(ref)
        iid = self.tags.pop(key, None)
        if iid is None:
            return None
        image = self.by_id[iid]
        if key in image.tags:
            image.tags.remove(key)
        repo = split_ref(key)[0]
        image.digests = [d for d in image.digests if not d.startswith(repo + "@")]
        return image

    def delete(self, image: Image) -> None:
        for t in list(image.tags):
            self.tags.pop(t, None)
        image.tags.clear()
        self.by_id.pop(image.id, None)

    def listing(self, name: str | None = None, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``GET /images/json``: ``name`` (a repository, or ``repo:tag``) and ``label`` filters."""
        wanted = []
        for key, values in (filters or {}).items():
            if key != "label":
                raise EngineError(f"invalid filter '{key}'", 400)
            wanted.extend([values] if isinstance(values, str) else list(values))
        out = []
        for image in sorted(self.by_id.values(), key=lambda i: -i.created_ns):
            if name:
                repo, tag, _ = split_ref(name)
                keys = [f"{repo}:{tag}"] if tag else [t for t in image.tags if split_ref(t)[0] == repo]
                if not any(k in image.tags for k in keys):
                    continue
            labels = image.config.get("Labels") or {}
            if not labels_match(labels, wanted):
                continue
            out.append(image.list_entry())
        return out

    def has_layer(self, digest: str) -> bool:
        return any(layer.digest == digest for img in self.by_id.values() for layer in img.layers)


@dataclass
class RegistryEntry:
    image: Image
    manifest_digest: str


class Registry:
    """Images the fake can pull (``fake.registry``).

    ``speed`` is the download speed in bytes per second (``None``: instant;
    the pull still yields every event). ``fail_next(ref_glob, error)``
    makes a pull fail mid-stream.
    """

    def __init__(self, speed: float | None = None) -> None:
        self.speed = speed
        self.entries: dict[str, RegistryEntry] = {}
        self._failures: list[tuple[str, Exception]] = []

    def add(
        self,
        ref: str,
        *,
        config: dict[str, Any] | None = None,
        layers: list[Any] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> str:
        """Make ``ref`` pullable; returns its manifest digest."""
        return self.publish(ref, build_image(config, layers, files))

    def publish(self, ref: str, image: Image) -> str:
        """Make ``image`` pullable as ``ref`` (what a push does); returns its
        manifest digest."""
        manifest = "sha256:" + hashlib.sha256(f"manifest:{image.id}".encode()).hexdigest()
        self.entries[normalize_ref(ref)] = RegistryEntry(image, manifest)
        return manifest

    def remove(self, ref: str) -> None:
        self.entries.pop(normalize_ref(ref), None)

    def fail_next(self, ref_glob: str, error: Exception) -> None:
        """The next pull of a ref matching ``ref_glob`` fails after its first
        layer started downloading (a broken connection, a full disk)."""
        self._failures.append((ref_glob, error))

    def lookup(self, ref: str) -> RegistryEntry:
        repo, _tag, digest = split_ref(ref)
        if digest:
            for key, entry in self.entries.items():
                if split_ref(key)[0] == repo and entry.manifest_digest == digest:
                    return entry
        else:
            entry = self.entries.get(normalize_ref(ref))
            if entry is not None:
                return entry
        shown = normalize_ref(ref)
        raise NotFound(f"manifest for {shown} not found: manifest unknown: manifest unknown")

    def take_failure(self, ref: str) -> Exception | None:
        import fnmatch

        for i, (glob, err) in enumerate(self._failures):
            if fnmatch.fnmatchcase(ref, glob):
                del self._failures[i]
                return err
        return None


def _progress_bar(current: int, total: int) -> str:
    width = 50
    filled = int(width * current / total) if total else width
    bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + " " * (width - filled)
    return f"[{bar}]  {_human_bytes(current)}/{_human_bytes(total)}"


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


class PullJob(Replay[PullEvent]):
    """One pull that several callers may follow, late ones included."""

    def __init__(self) -> None:
        super().__init__()
        self.task: asyncio.Task | None = None


async def run_pull(
    ref: str,
    entry: RegistryEntry,
    store: ImageStore,
    speed: float | None,
    emit: Callable[[PullEvent], None],
    failure: Exception | None,
    is_down: Callable[[], bool],
) -> Image:
    """Emit the engine's event sequence for pulling ``entry`` as ``ref`` and
    store the image; returns it. Download time follows ``speed``."""
    repo, tag, digest = split_ref(ref)
    label = digest or tag or "latest"
    key = normalize_ref(ref)

    def ev(
        status: str,
        layer: str | None = None,
        current: int | None = None,
        total: int | None = None,
        detail: bool = True,
    ) -> None:
        raw: dict[str, Any] = {"status": status}
        if layer is not None and detail:
            raw["progressDetail"] = {} if current is None else {"current": current, "total": total}
            if current is not None and total:
                raw["progress"] = _progress_bar(current, total)
        if layer is not None:
            raw["id"] = layer
        emit(PullEvent(status=status, layer=layer, current=current, total=total, raw=raw))

    ev(f"Pulling from {repo_path(repo)}", label, detail=False)
    local = store.find(key)
    up_to_date = local is not None and local.id == entry.image.id
    if not up_to_date:
        todo = []
        for layer in entry.image.layers:
            if store.has_layer(layer.digest):
                ev("Already exists", layer.short)
            else:
                ev("Pulling fs layer", layer.short)
                todo.append(layer)
        for layer in todo:
            total = layer.size + layer.size // 1000  # compressed blobs carry a little overhead
            steps = 4
            for step in range(1, steps + 1):
                if speed:
                    await asyncio.sleep(total / steps / speed)
                else:
                    await asyncio.sleep(0)
                if is_down():
                    raise ConnectionError("the engine went down during the pull")
                ev("Downloading", layer.short, total * step // steps, total)
                if failure is not None:
                    raise failure
            ev("Verifying Checksum", layer.short)
            ev("Download complete", layer.short)
        for layer in todo:
            total = layer.size + layer.size // 1000
            ev("Extracting", layer.short, total // 2, total)
            await asyncio.sleep(0)
            ev("Extracting", layer.short, total, total)
            ev("Pull complete", layer.short)
    ev(f"Digest: {entry.manifest_digest}")
    image = store.by_id.get(entry.image.id)
    if image is None:
        image = Image(
            id=entry.image.id,
            config=json.loads(json.dumps(entry.image.config)),
            layers=list(entry.image.layers),
            files=dict(entry.image.files),
            dirs=set(entry.image.dirs),
        )
        store.by_id[image.id] = image
    if not digest:
        store.tag(image, key)
    repo_digest = f"{repo}@{entry.manifest_digest}"
    if repo_digest not in image.digests:
        image.digests.append(repo_digest)
    if up_to_date:
        ev(f"Status: Image is up to date for {ref if digest else key}")
    else:
        ev(f"Status: Downloaded newer image for {ref if digest else key}")
    return image


def check_removable(image: Image, ref: str, users: list[tuple[str, bool]], force: bool, by_id: bool) -> None:
    """Raise the engine's 409s for removing an image that is still needed.

    ``users`` are (container id, running) of containers made from it.
    """
    if by_id and len(image.tags) > 1 and not force:
        raise Conflict(
            f"conflict: unable to delete {image.short_id} (must be forced) - "
            "image is referenced in multiple repositories"
        )
    if not users:
        return
    cid, running = users[0]
    if by_id:
        if running:
            raise Conflict(
                f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                f"image is being used by running container {cid[:12]}"
            )
        if not force:
            raise Conflict(
                f"conflict: unable to delete {image.short_id} (must be forced) - "
                f"image is being used by stopped container {cid[:12]}"
            )
    elif not force and len(image.tags) <= 1:
        raise Conflict(
            f'conflict: unable to remove repository reference "{ref}" (must force) - '
            f"container {cid[:12]} is using its referenced image {image.short_id}"
        )
