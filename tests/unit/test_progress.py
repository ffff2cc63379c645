"""Pull progress aggregation and the per-spawn progress log."""

from __future__ import annotations

import asyncio

from hypothesis import given, strategies as st

from dockerspawner.engine.protocol import PullEvent
from dockerspawner.progress import PHASES, ProgressLog, PullProgress, pull_message


def test_percent_over_layers_with_sizes():
    p = PullProgress()
    p.update(PullEvent("Pulling fs layer", layer="a"))
    p.update(PullEvent("Pulling fs layer", layer="b"))
    assert p.percent == 0
    p.update(PullEvent("Downloading", layer="a", current=50, total=100))
    assert p.percent == 25  # b's size is not known yet: guessed as the average
    p.update(PullEvent("Downloading", layer="b", current=0, total=300))
    assert p.percent == 25  # really 12%, but the bar never goes back
    p.update(PullEvent("Download complete", layer="a"))
    p.update(PullEvent("Downloading", layer="b", current=200, total=300))
    assert p.percent == 75
    p.update(PullEvent("Downloading", layer="b", current=300, total=300))
    assert p.percent == 100


def test_layers_without_sizes_count_when_finished():
    p = PullProgress()
    p.update(PullEvent("Pulling fs layer", layer="b"))
    p.update(PullEvent("Pulling fs layer", layer="c"))
    assert p.percent == 0
    p.update(PullEvent("Pull complete", layer="b"))
    assert p.percent == 50
    p.update(PullEvent("Pull complete", layer="c"))
    assert p.percent == 100


def test_podman_pull_without_byte_counts_advances_by_layer():
    """What Podman 4.3 sends (tests/contract/test_pull.py pins it): no sizes."""
    p = PullProgress()
    seen = []
    for status, layer in [("Already exists", "base"), ("Pulling fs layer", "l1"), ("Pulling fs layer", "l2"),
                          ("Download complete", "l1"), ("Download complete", "l2")]:
        p.update(PullEvent(status, layer=layer))
        seen.append(p.percent)
    assert seen == [0, 0, 0, 50, 100]


def test_cached_layers_do_not_finish_a_pull_early():
    p = PullProgress()
    p.update(PullEvent("Already exists", layer="base"))
    assert p.percent == 0
    p.update(PullEvent("Pulling fs layer", layer="top"))
    p.update(PullEvent("Downloading", layer="top", current=10, total=100))
    assert p.percent == 10


def test_events_without_layer_are_ignored():
    p = PullProgress()
    p.update(PullEvent("Pulling from library/x", layer="latest"))
    p.update(PullEvent("Digest: sha256:abc"))
    p.update(PullEvent("complete", image_id="sha256:x"))
    assert p.percent == 0 and not p.layers


@given(
    st.dictionaries(st.sampled_from("abcd"), st.integers(1, 10_000), min_size=1),
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 10_000)), max_size=40),
)
def test_percent_is_bounded_and_never_goes_back_while_bytes_grow(sizes, steps):
    p = PullProgress()
    current = dict.fromkeys(sizes, 0)
    for layer, size in sizes.items():
        p.update(PullEvent("Downloading", layer=layer, current=0, total=size))
    last = p.percent
    for layer, amount in steps:
        if layer not in sizes:
            continue
        current[layer] = min(sizes[layer], current[layer] + amount)
        p.update(PullEvent("Downloading", layer=layer, current=current[layer], total=sizes[layer]))
        assert 0 <= p.percent <= 100
        assert p.percent >= last
        last = p.percent
    assert p.percent == int(100 * sum(current.values()) / sum(sizes.values()))


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from(["Pulling fs layer", "Downloading", "Download complete", "Pull complete"]), st.integers(0, 5000), st.integers(1, 5000)), max_size=60))
def test_percent_never_goes_back_whatever_the_engine_announces(events):
    p = PullProgress()
    last = 0
    for layer, status, current, total in events:
        p.update(PullEvent(status, layer=layer, current=current, total=total))
        assert last <= p.percent <= 100
        last = p.percent


def test_pull_message_maps_into_pull_phase():
    assert pull_message("img", 0)[0] == PHASES["pull"]
    assert pull_message("img", 100)[0] == PHASES["create"]
    assert "img" in pull_message("img", 42)[1] and "42%" in pull_message("img", 42)[1]


async def test_progress_log_replays_then_follows_until_closed():
    log = ProgressLog()
    log.emit(5, "one")
    log.emit(5, "one")  # duplicates collapse
    got = []

    async def reader():
        async for event in log.follow():
            got.append(event["message"])

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    log.emit(50, "two")
    await asyncio.sleep(0)
    log.emit(90, "three")
    log.close()
    await asyncio.wait_for(task, 2)
    assert got == ["one", "two", "three"]
