"""Publish a local image to a registry over the registry's HTTP API.

``docker push`` gzips every layer: for a single-user image (~500 MB) that is
a minute of CPU on a small machine, per fresh registry. This sends the
layers of ``docker save`` as they are (uncompressed OCI layers, which
engines pull like compressed ones), mounts blobs already in the registry
from the repository that has them, and adds one fresh layer so the engine
has to download something when it pulls.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any

#: The fresh layer: big enough that Docker reports byte progress.
LAYER_BYTES = 1024 * 1024
LAYER_FILE = ".fakedocker-registry-layer"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Uploads:
    """What one registry already holds: blob digest -> a repository with it,
    and per local image id the config and layers pushed for it."""

    host: str
    blobs: dict[str, str] = field(default_factory=dict)
    images: dict[str, tuple[dict, list[tuple[str, int]]]] = field(default_factory=dict)


def push_image(api: Any, uploads: Uploads, source: str, repo: str, tag: str) -> None:
    """Publish ``source`` (an image on docker-py ``api``'s engine) plus one
    fresh layer as ``repo:tag`` in the registry at ``uploads.host``. Layers
    of ``docker save`` are the uncompressed diffs, so their digests are the
    image's diff ids; the registry checks each one on upload."""
    image_id = api.inspect_image(source)["Id"]
    if image_id not in uploads.images:
        uploads.images[image_id] = _upload_saved(api, uploads, source, repo)
    config, layers = uploads.images[image_id]
    layers = [_blob(uploads, repo, digest, size, None) for digest, size in layers]
    fresh = _one_file_tar(LAYER_FILE, secrets.token_bytes(LAYER_BYTES))
    layers.append(_blob(uploads, repo, _sha256(fresh), len(fresh), lambda: io.BytesIO(fresh)))
    config = json.loads(json.dumps(config))
    config["rootfs"]["diff_ids"].append(layers[-1][0])
    config.setdefault("history", []).append({"created_by": "fakedocker_registry: a fresh layer"})
    config_bytes = json.dumps(config).encode()
    config_blob = _blob(uploads, repo, _sha256(config_bytes), len(config_bytes), lambda: io.BytesIO(config_bytes))
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": config_blob[0], "size": config_blob[1]},
        "layers": [{"mediaType": _LAYER, "digest": d, "size": size} for d, size in layers],
    }
    body = json.dumps(manifest).encode()
    _request(uploads.host, "PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": _MANIFEST}, expect=(201,))


def _upload_saved(api: Any, uploads: Uploads, source: str, repo: str) -> tuple[dict, list[tuple[str, int]]]:
    """``docker save`` of ``source``, its layers uploaded to ``repo``; returns
    its config and (digest, size) per layer."""
    with tempfile.TemporaryDirectory(prefix="fakedocker-push-") as tmp:
        saved = os.path.join(tmp, "image.tar")
        with open(saved, "wb") as out:
            out.writelines(api.get_image(source))
        with tarfile.open(saved) as tar:
            (entry,) = json.load(tar.extractfile("manifest.json"))
            config = json.load(tar.extractfile(entry["Config"]))
            layers = []
            for name, digest in zip(entry["Layers"], config["rootfs"]["diff_ids"]):
                member = tar.getmember(name)
                layers.append(_blob(uploads, repo, digest, member.size, lambda m=member: tar.extractfile(m)))
    return config, layers


def _blob(uploads: Uploads, repo: str, digest: str, size: int, open_blob: Any) -> tuple[str, int]:
    """Upload one blob (``open_blob()`` gives a reader) unless the registry
    has it in ``repo``, or mount it from the repository that has it."""
    have = uploads.blobs.get(digest)
    if have == repo:
        return digest, size
    if have is not None:
        status, _ = _request(uploads.host, "POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={have}", b"")
        if status == 201:
            uploads.blobs[digest] = repo
            return digest, size
    if open_blob is None:
        raise RuntimeError(f"registry {uploads.host} lost blob {digest[:19]}: restart the session")
    _, headers = _request(uploads.host, "POST", f"/v2/{repo}/blobs/uploads/", b"", expect=(202,))
    location = headers["location"]
    sep = "&" if "?" in location else "?"
    path = location.split(uploads.host, 1)[-1]
    _request(uploads.host, "PUT", f"{path}{sep}digest={digest}", open_blob(), {"Content-Length": str(size),
             "Content-Type": "application/octet-stream"}, expect=(201,))
    uploads.blobs[digest] = repo
    return digest, size


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _request(
    host: str, method: str, path: str, body: Any, headers: dict[str, str] | None = None, expect: tuple[int, ...] = ()
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection(host, timeout=120)
    try:
        if hasattr(body, "read"):
            conn.putrequest(method, path)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            conn.endheaders()
            with body:
                shutil.copyfileobj(body, _Sender(conn), 1 << 20)
        else:
            conn.request(method, path, body, {"Content-Length": str(len(body)), **(headers or {})})
        resp = conn.getresponse()
        text = resp.read()
        if expect and resp.status not in expect:
            raise RuntimeError(f"registry {host}: {method} {path[:120]} gave {resp.status}: {text[:300]!r}")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


class _Sender:
    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.write = conn.send


def _one_file_tar(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
