"""Spawn progress: what JupyterHub's progress bar shows while a server starts.

``PullProgress`` folds an engine's per-layer pull events into one percentage;
``ProgressLog`` is the per-spawn event list that ``Spawner.progress()`` streams.
Both are plain objects, testable without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine.protocol import PullEvent
from .engine.replay import Replay

#: Where each phase sits on the hub's 0-100 bar (the hub itself shows 0 and 100).
PHASES = {
    "image": 5,
    "pull": 10,
    "create": 70,
    "start": 80,
    "post_start": 85,
    "wait": 90,
}
_PULL_SPAN = PHASES["create"] - PHASES["pull"]
_DONE_STATUSES = {"Pull complete", "Already exists", "Download complete"}
#: Statuses that concern one layer ("Pulling from <repo>" carries the tag as its id).
_LAYER_STATUSES = _DONE_STATUSES | {"Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Extracting"}


@dataclass
class PullProgress:
    """Bytes downloaded over bytes to download, across all layers of one pull.

    Engines announce a layer's size only when its download starts (Docker runs
    three at a time), so a layer not started yet counts at the average size of
    the known ones, and the result never goes back: a bar that jumps backwards
    when a big layer starts reads as a failure.
    """

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    _high: int = 0

    def update(self, event: PullEvent) -> None:
        layer = event.layer
        if not layer or event.status not in _LAYER_STATUSES:
            return
        if event.status == "Already exists":
            # nothing to download: it must not make a fresh pull look finished
            self.layers.pop(layer, None)
            return
        if event.status in _DONE_STATUSES:
            self.finished.add(layer)
        if event.status.startswith("Downloading") and event.total:
            self.layers[layer] = (min(event.current or 0, event.total), event.total)
        elif layer not in self.layers:
            self.layers[layer] = (0, 0)

    @property
    def percent(self) -> int:
        sizes = [size for _, size in self.layers.values() if size]
        if sizes:
            guess = sum(sizes) / len(sizes)
            total = done = 0.0
            for layer, (current, size) in self.layers.items():
                size = size or guess
                total += size
                done += size if layer in self.finished else current
            # done == total can still give 99.999...: a finished pull must read 100
            raw = 100 if done >= total else int(100 * done / total)
        elif self.layers:
            # no sizes at all (Podman sends none): finished layers over layers
            raw = 100 * len(self.finished & set(self.layers)) // len(self.layers)
        else:
            raw = 0
        self._high = max(self._high, min(raw, 100))
        return self._high


class ProgressLog(Replay[dict]):
    """The events of one spawn; ``follow()`` replays them and then waits for more
    until ``close()``."""

    def emit(self, progress: int, message: str) -> None:
        event = {"progress": progress, "message": message}
        if not self.items or self.items[-1] != event:
            self.add(event)

    def close(self) -> None:
        self.finish()

    @property
    def closed(self) -> bool:
        return self.done


def pull_message(image: str, percent: int) -> tuple[int, str]:
    """The bar position and text for a pull at ``percent``."""
    return PHASES["pull"] + _PULL_SPAN * percent // 100, f"Pulling image {image}: {percent}%"
