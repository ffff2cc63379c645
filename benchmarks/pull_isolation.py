#!/usr/bin/env python
"""Pull isolation: does user A's large pull slow user B's spawn of a present image?

Once, a ``bench-big`` image (busybox plus one layer of ``--layer-mb`` MB of
/dev/urandom, so it does not compress) is built locally, pushed to the
loopback registry (``127.0.0.1:5000``) and removed locally; it stays in the
registry for later runs (``--drop-registry-image`` deletes its manifest).
Before every pull the local copy is removed, so A really pulls it.

B's spawn time (``start()`` returned) is measured, for each engine mode:

- ``alone``: nothing else happening;
- ``during``: B starts as soon as A's spawn reports pull progress.

Modes: ``ours`` (a shared ``DockerPyEngine``: pulls in lanes of their own) and
``serialized`` (every protocol call, and a whole pull, through ONE lane: the
established spawner's model). Reported: medians and the ratio B during / B alone
for each mode, and whether B finished before A's pull did.

    .venv/bin/python benchmarks/pull_isolation.py --layer-mb 300 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

REGISTRY = "127.0.0.1:5000"
REPO = "bench-big"
MODES = ("raw", "ours", "serialized")
_MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json,"
    "application/vnd.oci.image.manifest.v1+json"
)


def big_ref(layer_mb: int) -> str:
    return f"{REGISTRY}/{REPO}:{layer_mb}m"


# -- the big image ------------------------------------------------------------------------
def _registry_digest(tag: str) -> str | None:
    """The manifest digest of ``bench-big:<tag>`` in the registry, None if absent."""
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{REPO}/manifests/{tag}", method="HEAD", headers={"Accept": _MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers.get("Docker-Content-Digest") or "present"
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def drop_registry_image(layer_mb: int) -> bool:
    """Delete the manifest from the registry (its blobs stay until the registry's GC)."""
    digest = _registry_digest(f"{layer_mb}m")
    if not digest or not digest.startswith("sha256:"):
        return False
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{REPO}/manifests/{digest}", method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=10):
            return True
    except urllib.error.HTTPError as e:
        h.log.warning("registry refused to delete %s: %s", digest, e)
        return False


def ensure_big_image(api, layer_mb: int, run_id: str) -> dict[str, Any]:
    """Make sure the registry has the big image; build and push it if not."""
    ref = big_ref(layer_mb)
    if _registry_digest(f"{layer_mb}m"):
        return {"ref": ref, "built": False, "build_s": 0.0}
    t0 = time.perf_counter()
    name = f"bench-{run_id}-mkbig"
    cid = api.create_container(
        h.IMAGE,
        ["dd", "if=/dev/urandom", "of=/blob", "bs=1048576", f"count={layer_mb}"],
        name=name,
        labels=h.labels(run_id),
    )["Id"]
    try:
        api.start(cid)
        code = api.wait(cid, timeout=600).get("StatusCode")
        if code != 0:
            raise RuntimeError(f"making the random layer failed ({code}): {api.logs(cid)[-500:]!r}")
        api.commit(cid, repository=f"{REGISTRY}/{REPO}", tag=f"{layer_mb}m",
                   changes=[f"LABEL {h.BENCH_LABEL}={h.BENCH_VALUE}"])
    finally:
        api.remove_container(cid, force=True)
    for event in api.push(f"{REGISTRY}/{REPO}", tag=f"{layer_mb}m", stream=True, decode=True):
        if isinstance(event, dict) and (event.get("error") or event.get("errorDetail")):
            raise RuntimeError(f"push of {ref} failed: {event}")
    remove_local(api, ref)
    return {"ref": ref, "built": True, "build_s": round(time.perf_counter() - t0, 2)}


def remove_local(api, ref: str) -> None:
    import docker

    try:
        info = api.inspect_image(ref)
    except docker.errors.NotFound:
        return
    if ((info.get("Config") or {}).get("Labels") or {}).get(h.BENCH_LABEL) != h.BENCH_VALUE:
        raise RuntimeError(f"{ref} exists locally but is not a bench image; refusing to remove it")
    api.remove_image(ref, force=True)


# -- measurements -------------------------------------------------------------------------
#: When B starts, by the status of A's pull events: the first event, the first
#: "Downloading" (bytes flowing from the registry) or the first "Extracting"
#: (the engine unpacking the layer: the CPU- and disk-heavy part).
TRIGGERS = {"start": "", "download": "Downloading", "extract": "Extracting"}


class PullWatch:
    """A pass-through engine that shows each pull event to ``on_event`` (the
    engine's own events, so B's start does not depend on how the spawner
    turns them into a percentage)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.on_event: Any = None

    def __deepcopy__(self, memo: dict) -> PullWatch:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def pull_image(self, ref: str):
        async for event in self._inner.pull_image(ref):
            if self.on_event is not None:
                self.on_event(event.status)
            yield event


class Marks:
    """Times of A's pull (first event, B's trigger, end), from any thread."""

    def __init__(self, trigger: str) -> None:
        self.status = TRIGGERS[trigger]
        self.first: float | None = None
        self.trigger: float | None = None
        self.done: float | None = None

    def see(self, status: str) -> bool:
        """Note one pull event; True when B should start now."""
        t = time.perf_counter()
        if self.first is None:
            self.first = t
        if status == "complete":  # the protocol's last event: the pull is over
            self.done = t
        if self.trigger is None and (status.startswith(self.status) or status == "complete"):
            self.trigger = t
            return True
        return False

    def finish(self, t_b: float, t_b_done: float, b_s: float) -> dict[str, Any]:
        return {
            "b_s": b_s,
            "a_pull_s": (self.done or t_b_done) - (self.first or t_b),
            "b_began_into_pull_s": t_b - (self.first or t_b),
            "b_done_before_pull_done": self.done is None or t_b_done < self.done,
        }


class Bench:
    def __init__(self, args: argparse.Namespace, run_id: str, api, engine) -> None:
        self.args = args
        self.run_id = run_id
        self.api = api
        self.watch = PullWatch(engine)
        self.engines = {"ours": self.watch, "serialized": h.SerializedEngine(self.watch)}
        self.users = h.Users()
        self._n = 0
        self.ref = big_ref(args.layer_mb)

    def _name(self, mode: str) -> str:
        self._n += 1
        return f"bench-{self.run_id}-{self._n}{mode[0]}"

    def _spawner(self, who: str, mode: str, **traits: Any) -> Any:
        traits = h.spawner_traits(self.run_id, self._name(mode), engine=self.engines[mode], **traits)
        return self.users.spawner(who, **traits)

    async def b_alone(self, mode: str) -> float:
        if mode == "raw":
            return await asyncio.get_running_loop().run_in_executor(None, self._raw_alone)
        b = self._spawner("b", mode)
        t0 = time.perf_counter()
        try:
            await b.start()
            return time.perf_counter() - t0
        finally:
            await b.stop(now=True)

    async def b_during_pull(self, mode: str, phase: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, remove_local, self.api, self.ref)
        if mode == "raw":
            return await loop.run_in_executor(None, self._raw_during, phase)
        a = self._spawner("a", mode, image=self.ref)
        b = self._spawner("b", mode)
        marks = Marks(phase)
        go = asyncio.Event()
        self.watch.on_event = lambda status: marks.see(status) and go.set()
        a_task = asyncio.create_task(a.start())
        b_started = False
        try:
            waiter = asyncio.create_task(go.wait())
            await asyncio.wait({waiter, a_task}, timeout=600, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not go.is_set():
                if a_task.done():
                    a_task.result()  # raises A's error, if any
                raise RuntimeError("A's spawn did not pull (was the image present?)")
            t_b = time.perf_counter()
            b_started = True
            await b.start()
            t_b_done = time.perf_counter()
            await a_task
        finally:
            self.watch.on_event = None
            if not a_task.done():
                a_task.cancel()
            await asyncio.gather(a_task, return_exceptions=True)
            stops = [a.stop(now=True)] + ([b.stop(now=True)] if b_started else [])
            await asyncio.gather(*stops, return_exceptions=True)
        return marks.finish(t_b, t_b_done, t_b_done - t_b)

    # raw docker-py: the engine's own isolation (A: a plain pull; B: create+start+HTTP)
    def _raw_alone(self) -> float:
        t0 = time.perf_counter()
        cid = h.raw_spawn(self.api, self._name("raw") + "-b", self.run_id, http=True)
        b_s = time.perf_counter() - t0
        h.raw_stop(self.api, cid)
        return b_s

    def _raw_during(self, phase: str) -> dict[str, Any]:
        marks = Marks(phase)
        go = threading.Event()
        repo, tag = self.ref.rsplit(":", 1)

        def pull() -> None:
            try:
                for event in self.api.pull(repo, tag, stream=True, decode=True):
                    if isinstance(event, dict) and (event.get("error") or event.get("errorDetail")):
                        raise RuntimeError(f"pull of {self.ref} failed: {event}")
                    if isinstance(event, dict) and marks.see(str(event.get("status") or "")):
                        go.set()
                if marks.see("complete"):
                    go.set()
            finally:
                go.set()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-pull") as pool:
            a = pool.submit(pull)
            go.wait(600)
            if a.done():
                a.result()
            t_b = time.perf_counter()
            cid = h.raw_spawn(self.api, self._name("raw") + "-b", self.run_id, http=True)
            t_b_done = time.perf_counter()
            try:
                a.result(timeout=600)
            finally:
                h.raw_stop(self.api, cid)
        return marks.finish(t_b, t_b_done, t_b_done - t_b)


async def _run(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    from dockerspawner.engine.dockerpy import DockerPyEngine

    api = h.docker_api(pool=8, timeout=600)
    engine = DockerPyEngine()
    loop = asyncio.get_running_loop()
    bench: Bench | None = None
    data: dict[str, dict[str, Any]] = {
        m: {
            "b_alone_s": [],
            "during": {p: {"b_s": [], "a_pull_s": [], "b_done_before_pull_done": []} for p in args.b_at},
        }
        for m in MODES
    }
    try:
        info = h.machine_info(api)
        await engine.inspect_image(h.IMAGE)
        image = await loop.run_in_executor(None, ensure_big_image, api, args.layer_mb, run_id)
        bench = Bench(args, run_id, api, engine)
        if args.warmup:
            await bench.b_alone("ours")
            await bench.b_alone("raw")
        for rep in range(args.repeats):
            order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                d = data[mode]
                alone = await bench.b_alone(mode)
                d["b_alone_s"].append(round(alone, 4))
                line = f"  rep {rep + 1} {mode:<10} B alone {alone:6.3f}s"
                for phase in args.b_at:
                    during = await bench.b_during_pull(mode, phase)
                    dp = d["during"][phase]
                    dp["b_s"].append(round(during["b_s"], 4))
                    dp["a_pull_s"].append(round(during["a_pull_s"], 3))
                    dp["b_done_before_pull_done"].append(during["b_done_before_pull_done"])
                    line += (f" | from {phase}: B {during['b_s']:6.3f}s (A pull {during['a_pull_s']:.1f}s,"
                             f" B began {during['b_began_into_pull_s']:.2f}s in,"
                             f" done first: {during['b_done_before_pull_done']})")
                if not args.quiet:
                    print(line, file=sys.stderr, flush=True)
        leftover = h.count_run_containers(api, run_id)
    finally:
        if bench is not None:
            bench.users.close()
        await engine.close()
        try:
            remove_local(api, big_ref(args.layer_mb))
        finally:
            api.close()
    ratios: dict[str, float | None] = {}
    for mode, d in data.items():
        d["b_alone_median_s"] = h.median(d["b_alone_s"])
        for phase, dp in d["during"].items():
            dp["b_median_s"] = h.median(dp["b_s"])
            dp["a_pull_median_s"] = h.median(dp["a_pull_s"])
            dp["over_alone"] = h.ratio(dp["b_median_s"], d["b_alone_median_s"])
            ratios[f"{mode}_{phase}_over_alone"] = dp["over_alone"]
    for phase in args.b_at:
        during = {m: data[m]["during"][phase]["b_median_s"] for m in MODES}
        ratios[f"ours_over_raw_{phase}"] = h.ratio(during["ours"], during["raw"])
        ratios[f"serialized_over_ours_{phase}"] = h.ratio(during["serialized"], during["ours"])
    return {
        "benchmark": "pull_isolation",
        "layer_mb": args.layer_mb,
        "b_at": list(args.b_at),
        "repeats": args.repeats,
        "image": image,
        "machine": info,
        "modes": data,
        "ratios": ratios,
        "leftover_containers": leftover,
        "run_id": run_id,
    }


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        (
            f"pull_isolation: B spawns {h.IMAGE} while A pulls {result['image']['ref']} ({result['layer_mb']} MB"
            f" random layer); median of {result['repeats']} ({m['date']}, {m['cpus']} cpus,"
            f" engine {m['engine_version']})"
        ),
    ]
    head = f"{'mode':<11}{'B alone s':>10}"
    for phase in result["b_at"]:
        head += f" | {'B from ' + phase + ' s':>18}{'/alone':>7}{'A pull s':>9}"
    lines.append(head)
    for mode, d in result["modes"].items():
        row = f"{mode:<11}{h.fmt(d['b_alone_median_s'], 3):>10}"
        for phase in result["b_at"]:
            dp = d["during"][phase]
            row += f" | {h.fmt(dp['b_median_s'], 3):>18}{h.fmt(dp['over_alone']):>7}{h.fmt(dp['a_pull_median_s'], 1):>9}"
        lines.append(row)
    r = result["ratios"]
    for phase in result["b_at"]:
        overlap = {mode: d["during"][phase]["b_done_before_pull_done"] for mode, d in result["modes"].items()}
        lines.append(
            f"B from {phase}: ours/raw {h.fmt(r[f'ours_over_raw_{phase}'])},"
            f" serialized/ours {h.fmt(r[f'serialized_over_ours_{phase}'])}; B done before A's pull: {overlap}"
        )
    lines.append(f"leftover containers: {result['leftover_containers']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer-mb", type=int, default=300, help="size of A's random layer in MB (default 300)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per mode (default 3)")
    p.add_argument("--b-at", default="download,extract",
                   help="comma list: B starts at A's first pull event ('start'), first 'download' event"
                        " or first 'extract' event; one measurement each (default download,extract)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed first spawn")
    p.add_argument("--drop-registry-image", action="store_true",
                   help="delete the big image's manifest from the registry at the end")
    p.add_argument("--json", action="store_true", help="print the result dict as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-measurement lines")
    p.add_argument("--verbose", action="store_true", help="spawner and engine logs")
    args = p.parse_args(argv)
    args.b_at = list(dict.fromkeys(t.strip() for t in args.b_at.split(",") if t.strip()))
    if not args.b_at or set(args.b_at) - set(TRIGGERS):
        p.error(f"--b-at: choose from {', '.join(TRIGGERS)}")
    if not (1 <= args.layer_mb <= 2048) or not (1 <= args.repeats <= 20):
        p.error("--layer-mb must be 1..2048 and --repeats 1..20")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)

    def cleanup(run_id: str) -> None:
        h.cleanup_sync(run_id, images=[big_ref(args.layer_mb)])
        if args.drop_registry_image:
            drop_registry_image(args.layer_mb)

    return h.run_benchmark(argv, args, _run, report, cleanup)


if __name__ == "__main__":
    h.run_as_script(main)
