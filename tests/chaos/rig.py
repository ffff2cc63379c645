"""One extra dockerd for the chaos tests, which they may stop and restart.

It runs in a network namespace of its own (``cx-eng``; the approach of
``.ci/multi-node-swarm``): ``nsenter --net`` plus ``unshare --mount --uts``,
its own socket, data root, exec root, pidfile, cgroup parent, config file and
trust key, ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1``. The system engine is
never touched. The namespace is linked to this one by a veth pair on
10.216.0.0/30 (``.ci/multi-node-swarm`` uses 10.215.0.0/24, the fresh machine
10.214.0.0/30): servers publish their port on the engine's address 10.216.0.2,
which this namespace reaches over the link; nothing is routed anywhere else.

``live-restore`` is on, so the containers keep running while the daemon is
down, as on a production host whose dockerd is restarted. Only the PIDs this
module started are ever signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NETNS = "cx-eng"
HOST_IF = "veth-cx"
HOST_ADDR = "10.216.0.1"
ENGINE_ADDR = "10.216.0.2"
PREFIX_LEN = 30
ROOT = Path("/tmp/cx-eng")
SOCKET = ROOT / "docker.sock"
IMAGE = "local/busybox:test"
REPO = Path(__file__).resolve().parents[2]


def _run(*cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, stdin=subprocess.DEVNULL)


def _alive(pid: int) -> bool:
    """``pid`` runs and is not a zombie (PID 1 here reaps late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _wait(check, timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f}s")
        time.sleep(step)


@dataclass
class ChaosEngine:
    """The extra engine: ``up()``, ``stop()``, ``start()``, ``down()``."""

    timings: dict[str, float] = field(default_factory=dict)
    pid: int | None = None
    insecure_registries: tuple[str, ...] = (f"{HOST_ADDR}/32",)

    @property
    def url(self) -> str:
        return f"unix://{SOCKET}"

    def docker(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return _run("docker", "-H", self.url, *args, timeout=timeout, check=check)

    def answers(self) -> bool:
        return self.docker("version", "--format", "{{.Server.Version}}", timeout=5, check=False).returncode == 0

    # -- network -------------------------------------------------------------
    def _net_up(self) -> None:
        if not Path(f"/run/netns/{NETNS}").exists():
            _run("ip", "netns", "add", NETNS)
        if _run("ip", "link", "show", "dev", HOST_IF, check=False).returncode != 0:
            _run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
        if f"inet {HOST_ADDR}/" not in _run("ip", "-4", "addr", "show", "dev", HOST_IF).stdout:
            _run("ip", "addr", "add", f"{HOST_ADDR}/{PREFIX_LEN}", "dev", HOST_IF)
        _run("ip", "link", "set", "dev", HOST_IF, "up")
        _run("ip", "-n", NETNS, "link", "set", "dev", "lo", "up")
        if f"inet {ENGINE_ADDR}/" not in _run("ip", "-n", NETNS, "-4", "addr", "show", "dev", "eth0").stdout:
            _run("ip", "-n", NETNS, "addr", "add", f"{ENGINE_ADDR}/{PREFIX_LEN}", "dev", "eth0")
        _run("ip", "-n", NETNS, "link", "set", "dev", "eth0", "up")

    # -- daemon --------------------------------------------------------------
    def _drop_stale_containerd(self) -> None:
        """A stopped dockerd's containerd may linger (or its pid file): a new
        dockerd then times out waiting for it. Kill only one naming our paths."""
        pidfile = ROOT / "exec" / "containerd" / "containerd.pid"
        try:
            cpid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if any(str(ROOT) in a for a in _cmdline(cpid)) and _alive(cpid):
            os.kill(cpid, signal.SIGKILL)
            _wait(lambda: not _alive(cpid), 10, f"containerd {cpid} survives SIGKILL")
        pidfile.unlink(missing_ok=True)

    def start(self, timeout: float = 30) -> float:
        """Start the dockerd (again); seconds until its API answered."""
        t0 = time.monotonic()
        ROOT.mkdir(parents=True, exist_ok=True)
        self._drop_stale_containerd()
        (ROOT / "docker.pid").unlink(missing_ok=True)
        config = {
            "deprecated-key-path": str(ROOT / "key.json"),
            "live-restore": True,
            "insecure-registries": list(self.insecure_registries),
        }
        (ROOT / "daemon.json").write_text(json.dumps(config))
        log = open(ROOT / "dockerd.log", "ab")
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        env.pop("DOCKER_HOST", None)
        proc = subprocess.Popen(
            [
                "nsenter", f"--net=/run/netns/{NETNS}", "--",
                "unshare", "--mount", "--uts", "--propagation", "slave", "--",
                "sh", "-c", 'hostname "$0" && exec dockerd "$@"', NETNS,
                "--config-file", str(ROOT / "daemon.json"), "--host", self.url,
                "--pidfile", str(ROOT / "docker.pid"), "--data-root", str(ROOT / "data"),
                "--exec-root", str(ROOT / "exec"), "--cgroup-parent", "/cx-eng",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )
        log.close()
        self.pid = proc.pid  # nsenter, unshare and sh exec in place: this is dockerd
        self._proc = proc

        def up() -> bool:
            if proc.poll() is not None:
                tail = (ROOT / "dockerd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the chaos dockerd exited ({proc.returncode}):\n{tail}")
            return self.answers()

        _wait(up, timeout, "the chaos dockerd does not answer", step=0.1)
        return time.monotonic() - t0

    def stop(self, grace: float = 10) -> float:
        """Stop the dockerd we started (SIGTERM, SIGKILL after ``grace``);
        its containers keep running (live-restore). Seconds it took."""
        t0 = time.monotonic()
        pid = self.pid
        if pid is None or not _alive(pid):
            return 0.0
        if "dockerd" not in " ".join(_cmdline(pid)):
            raise RuntimeError(f"pid {pid} is no longer our dockerd; not signalling it")
        os.kill(pid, signal.SIGTERM)
        try:
            _wait(lambda: self._proc.poll() is not None, grace, "dockerd ignores SIGTERM")
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._proc.wait(10)
        self.pid = None
        return time.monotonic() - t0

    def _load_image(self) -> None:
        if self.docker("image", "inspect", IMAGE, check=False).returncode == 0:
            return
        cache = Path(os.environ.get("DOCKERSPAWNER_CI_CACHE") or Path.home() / ".cache" / "dockerspawner-ci")
        tar = cache / "busybox-rootfs.tar"
        if not tar.is_file() or tar.stat().st_size == 0:
            cache.mkdir(parents=True, exist_ok=True)
            _run("bash", str(REPO / ".ci" / "make-busybox-rootfs"), str(tar), timeout=120)
        self.docker("import", str(tar), IMAGE, timeout=120)

    def up(self) -> None:
        t0 = time.monotonic()
        if self._our_pids() or Path(f"/run/netns/{NETNS}").exists() or ROOT.exists():
            self.down()  # what an interrupted run left: start from nothing
        for tool in ("ip", "nsenter", "unshare", "dockerd", "docker"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (the chaos engine needs iproute2, util-linux, docker.io)")
        self._net_up()
        self.timings["net"] = time.monotonic() - t0
        self.timings["start"] = self.start()
        t1 = time.monotonic()
        self._load_image()
        self.timings["image"] = time.monotonic() - t1
        self.timings["up"] = time.monotonic() - t0

    # -- teardown ------------------------------------------------------------
    def _our_pids(self) -> list[int]:
        """Processes in our netns or naming our root: dockerd, containerd, shims, proxies."""
        try:
            ino = os.stat(f"/run/netns/{NETNS}").st_ino
        except OSError:
            ino = None
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in (1, os.getpid()):
                continue
            pid = int(entry)
            try:
                in_ns = ino is not None and os.stat(f"/proc/{pid}/ns/net").st_ino == ino
            except OSError:
                continue
            if in_ns or any(a.startswith(str(ROOT)) or f"={ROOT}" in a for a in _cmdline(pid)):
                if _alive(pid):
                    found.append(pid)
        return found

    def down(self) -> list[str]:
        """Remove everything ``up`` made; what could not be removed (empty: all gone)."""
        if self.pid is not None and self.answers():
            ids = self.docker("ps", "-q", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        self.stop(grace=5)
        for _ in range(50):
            pids = self._our_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(ROOT))]
        for m in sorted(mounts, reverse=True):
            _run("umount", "-l", m, check=False)
        _run("ip", "link", "del", "dev", HOST_IF, check=False)
        if Path(f"/run/netns/{NETNS}").exists():
            _run("ip", "netns", "del", NETNS, check=False)
        for cg in Path("/sys/fs/cgroup").glob("*/cx-eng"):
            for dirpath, _, _ in os.walk(cg, topdown=False):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        shutil.rmtree(ROOT, ignore_errors=True)
        left = [f"pid {p}" for p in self._our_pids()]
        if Path(f"/run/netns/{NETNS}").exists():
            left.append(f"netns {NETNS}")
        if _run("ip", "link", "show", "dev", HOST_IF, check=False).returncode == 0:
            left.append(f"link {HOST_IF}")
        if ROOT.exists():
            left.append(str(ROOT))
        return left
