"""CI set-up: a test image under the right tag but with other content is rebuilt.

`.ci/setup` once accepted any image named ``local/busybox:test``, so a machine
that had one from elsewhere hid that a fresh build served another page than the
tests expect. These tests run the image scripts against the real engine under
``ci-`` tags of their own (never the shared ``local/busybox:test``).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from fakedocker import BUSYBOX_FILES

from unavailable import unavailable

pytestmark = pytest.mark.real_engine

CI = Path(__file__).resolve().parents[2] / ".ci"
LABEL = "org.jupyter.dockerspawner-ci.content"
TEST_IMAGE = "local/busybox:test"
ENGINES = [e.strip() for e in os.environ.get("DOCKERSPAWNER_TEST_ENGINES", "fake,docker").split(",")]


def _run(*cmd: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=check, env={**os.environ, **(env or {})}
    )


def _image_id(ref: str) -> str:
    return _run("docker", "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def _label(ref: str) -> str:
    out = _run("docker", "image", "inspect", "-f", f'{{{{ index .Config.Labels "{LABEL}" }}}}', ref).stdout
    return out.strip().replace("<no value>", "")


def _import_tiny(ref: str, *labels: str) -> None:
    """An image with one file and the given ``LABEL k=v`` changes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"not the test image\n"
        info = tarfile.TarInfo("var/www/index.html")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    changes = [a for label in labels for a in ("--change", f"LABEL {label}")]
    subprocess.run(
        ["docker", "import", *changes, "-", ref], input=buf.getvalue(), capture_output=True, timeout=60, check=True
    )


@pytest.fixture
def ci_tags():
    """Names under ``ci-`` for this test; every one is untagged afterwards."""
    if "docker" not in ENGINES:
        pytest.skip("docker is not in DOCKERSPAWNER_TEST_ENGINES")
    ping = _run("docker", "image", "inspect", "-f", "{{.Id}}", TEST_IMAGE, check=False)
    if ping.returncode:
        why = f"no docker engine with {TEST_IMAGE} (run `bash .ci/setup`): {ping.stderr.strip()[:200]}"
        unavailable("the docker engine", why)
    made: list[str] = []

    def make(kind: str) -> str:
        made.append(f"ci-{kind}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    for repo in made:
        refs = _run("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repo).stdout.split()
        if refs:
            _run("docker", "rmi", *refs, check=False)


def test_busybox_image_with_right_tag_but_no_label_is_rebuilt(ci_tags, tmp_path):
    """The same rootfs imported without the label (as `.ci/setup` once did)."""
    image = ci_tags("bb") + ":test"
    _run(str(CI / "make-busybox-rootfs"), str(tmp_path / "rootfs.tar"))
    _run("docker", "import", str(tmp_path / "rootfs.tar"), image)
    assert _label(image) == ""
    want = _run(str(CI / "make-busybox-rootfs"), "--hash").stdout.strip()
    assert len(want) == 64

    assert _run(str(CI / "ensure-busybox-image"), image).stdout.strip() == f"{image} rebuilt"
    assert _label(image) == want
    built = _image_id(image)
    assert _run(str(CI / "ensure-busybox-image"), image).stdout.strip() == f"{image} present"
    assert _image_id(image) == built

    # what the real image serves is what the fake's image holds: one definition
    page = _run("docker", "run", "--rm", "--pull=never", image, "cat", "/var/www/index.html").stdout
    assert page.encode() == BUSYBOX_FILES["/var/www/index.html"]


def test_busybox_image_with_wrong_label_is_rebuilt(ci_tags):
    image = ci_tags("bb") + ":test"
    _import_tiny(image, f"{LABEL}=0123")
    before = _image_id(image)
    assert _run(str(CI / "ensure-busybox-image"), image).stdout.strip() == f"{image} rebuilt"
    assert _image_id(image) != before
    assert _label(image) == _run(str(CI / "make-busybox-rootfs"), "--hash").stdout.strip()


def test_busybox_hash_follows_the_spec(tmp_path):
    """The hash covers the fake's file list: another page means another hash."""
    ci = tmp_path / ".ci"
    (tmp_path / "fakedocker").mkdir()
    ci.mkdir()
    for name in ("make-busybox-rootfs", "busybox_spec.py"):
        (ci / name).write_bytes((CI / name).read_bytes())
        (ci / name).chmod(0o755)
    source = (CI.parent / "fakedocker" / "images.py").read_text()
    (tmp_path / "fakedocker" / "images.py").write_text(source)
    same = _run(str(ci / "make-busybox-rootfs"), "--hash").stdout
    assert same == _run(str(CI / "make-busybox-rootfs"), "--hash").stdout
    (tmp_path / "fakedocker" / "images.py").write_text(source.replace("rig busybox ok", "other page"))
    assert _run(str(ci / "make-busybox-rootfs"), "--hash").stdout != same


def test_singleuser_image_without_content_label_needs_a_build(ci_tags):
    """CHECK=1 asks build-singleuser-image what it would do: an image under the
    tag with the right jupyterhub version but another (or no) content label
    must be rebuilt; one with this checkout's label is kept."""
    repo, local = ci_tags("su"), ci_tags("su-local")
    env = {"JUPYTERHUB_VERSION": "9.8.7", "SINGLEUSER_REPO": repo, "LOCAL_REPO": local, "CHECK": "1"}
    version = "org.jupyter.dockerspawner-ci.jupyterhub-version=9.8.7"

    _import_tiny(f"{repo}:9.8.7", version)
    missing = _run(str(CI / "build-singleuser-image"), env=env, check=False)
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert "needs a build" in missing.stdout
    content = missing.stdout.rsplit("=", 1)[1].strip(" )\n")
    assert len(content) == 64

    _import_tiny(f"{repo}:9.8.7", version, f"{LABEL}=0123")
    wrong = _run(str(CI / "build-singleuser-image"), env=env, check=False)
    assert wrong.returncode == 3, wrong.stdout + wrong.stderr

    _import_tiny(f"{repo}:9.8.7", version, f"{LABEL}={content}")
    right = _run(str(CI / "build-singleuser-image"), env=env, check=False)
    assert (right.returncode, right.stdout.strip()) == (0, f"{repo}:9.8.7 up to date"), right.stderr
