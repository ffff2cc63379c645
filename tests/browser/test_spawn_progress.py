"""Spawn progress as a user sees it: a hub on the fake engine whose image must
first be pulled (slowly) from the fake's registry.

* in headless chromium: log in, request the server, watch the spawn-pending
  page's bar advance through the pull and land on the user's server;
* on the hub's progress event stream: increasing pull percentages, then ready.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import time
from urllib.parse import quote, urlsplit

import pytest
from jupyterhub.tests.utils import add_user, api_request, public_url

IMAGE = "quay.io/jupyterhub/singleuser:progress-test"
#: four layers, 7 MB at 2 MB/s: the pull takes ~3.5 s, 16 download steps
LAYERS = [2_500_000, 2_000_000, 1_500_000, 1_000_000]
PULL_SPEED = 2_000_000
PULL_RE = re.compile(r"Pulling image " + re.escape(IMAGE) + r": (\d+)%")


@pytest.fixture
def slow_pull_engine(fake_docker_factory):
    """A fake engine without the image, which its registry serves slowly."""
    fake = fake_docker_factory(pull_speed=PULL_SPEED)
    fake.registry.add(IMAGE, config={"Cmd": ["jupyterhub-singleuser"]}, layers=LAYERS)
    return fake


async def progress_hub(hub_factory, engine):
    # slow_spawn_timeout=0: a spawn request returns at once (the browser gets the
    # pending page, the API a 202) instead of waiting up to 10 s for the spawn
    return await hub_factory(engine, image=IMAGE, hub_config={"tornado_settings": {"slow_spawn_timeout": 0}})


def pull_percentages(messages) -> list[int]:
    return [int(m.group(1)) for m in map(PULL_RE.fullmatch, messages) if m]


def assert_non_decreasing(values, what: str) -> None:
    drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
    assert not drops, f"{what} went backwards {drops}: {values}"


def assert_progress_story(events: list[dict]) -> None:
    """Progress events of one spawn: the bar never goes back, the pull reports
    increasing percentages up to 100, then create, start, wait, and ready."""
    messages = [e.get("message", "") for e in events]
    assert events, "no progress events"
    assert_non_decreasing([e["progress"] for e in events], "progress")
    percentages = pull_percentages(messages)
    assert_non_decreasing(percentages, "the pull percentage")
    assert len(set(percentages)) >= 4 and percentages[-1] == 100, messages
    assert any(0 < p < 100 for p in percentages), messages
    phases = ["Pulling image", "Creating container", "Starting container", "Waiting for the server"]
    firsts = [next((i for i, m in enumerate(messages) if m.startswith(p)), None) for p in phases]
    assert None not in firsts and firsts == sorted(firsts), f"phases {phases} missing or out of order: {messages}"
    last = events[-1]
    assert last.get("ready") is True and last["progress"] == 100, last


# -- the browser --------------------------------------------------------------------------------
SAMPLE_JS = """
const bar = document.getElementById('progress-bar');
const msg = document.getElementById('progress-message');
return {
  url: window.location.href,
  value: bar ? bar.getAttribute('aria-valuenow') : null,
  width: bar ? bar.style.width : null,
  message: msg ? msg.textContent : null,
};
"""


#: Runs before every page's own scripts: keeps each progress event the page's
#: EventSource receives in sessionStorage, which survives the page's reload to
#: the server, so the test reads the whole story even when the last events
#: arrive between two samples.
RECORD_EVENTS_JS = """
(() => {
  const Original = window.EventSource;
  if (!Original) return;
  function Recording(url, config) {
    const source = new Original(url, config);
    source.addEventListener('message', (e) => {
      const seen = JSON.parse(sessionStorage.getItem('progress-events') || '[]');
      seen.push(JSON.parse(e.data));
      sessionStorage.setItem('progress-events', JSON.stringify(seen));
    });
    return source;
  }
  Recording.prototype = Original.prototype;
  window.EventSource = Recording;
})();
"""


def drive_spawn(driver, app, name: str, shots) -> dict:
    """Log in, request the server, sample the pending page until the browser
    leaves it (bounded); returns what was seen. Runs in a thread."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_EVENTS_JS})
    home = app.base_url + "hub/home"
    driver.get(public_url(app, path="hub/login?next=" + quote(home, safe="")))
    driver.find_element(By.ID, "username_input").send_keys(name)
    driver.find_element(By.ID, "password_input").send_keys(name)  # MockPAMAuthenticator: password == name
    driver.find_element(By.ID, "login_submit").click()
    WebDriverWait(driver, 15).until(ec.url_contains("/hub/home"))

    driver.get(public_url(app, path="hub/spawn"))
    pending_url = driver.current_url
    samples: list[dict] = []
    shot = None
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        try:
            sample = driver.execute_script(SAMPLE_JS)
        except WebDriverException:  # the page is reloading
            time.sleep(0.05)
            continue
        path = urlsplit(sample["url"]).path
        if "/hub/spawn-pending/" not in path:
            break
        samples.append(sample)
        pct = PULL_RE.fullmatch(sample["message"] or "")
        if shot is None and pct and 30 <= int(pct.group(1)) <= 80:
            shot = shots / "pending-mid-pull.png"
            driver.save_screenshot(str(shot))
        time.sleep(0.1)
    WebDriverWait(driver, 10).until(lambda d: "/hub/" not in urlsplit(d.current_url).path)
    return {
        "pending_url": pending_url,
        "samples": samples,
        "events": driver.execute_script("return JSON.parse(sessionStorage.getItem('progress-events') || '[]');"),
        "screenshot": shot,
        "final_url": driver.current_url,
        "final_text": driver.find_element(By.TAG_NAME, "body").text,
    }


async def test_spawn_pending_page_shows_pull_progress(browser, hub_factory, slow_pull_engine, tmp_path):
    app = await progress_hub(hub_factory, slow_pull_engine)
    add_user(app.db, app, name="ada")

    t0 = time.monotonic()
    seen = await asyncio.wait_for(asyncio.to_thread(drive_spawn, browser, app, "ada", tmp_path), 60)
    elapsed = time.monotonic() - t0
    shot = seen["screenshot"]
    if shot and os.environ.get("DOCKERSPAWNER_TEST_SCREENSHOT"):
        shutil.copy(shot, os.environ["DOCKERSPAWNER_TEST_SCREENSHOT"])
    samples = seen["samples"]
    summary = [(s["value"], s["message"]) for s in samples]

    assert "/hub/spawn-pending/ada" in urlsplit(seen["pending_url"]).path, seen["pending_url"]
    assert len(samples) >= 10, f"the pending page was sampled only {len(samples)} times: {summary}"

    # the bar: its value and its width agree, and it advances through several values
    values = []
    for s in samples:
        # before the first event the bar is at its template state (value 0, no width)
        assert s["width"] == f"{s['value']}%" or (s["value"], s["width"]) == ("0", ""), s
        values.append(int(s["value"]))
    assert_non_decreasing(values, "the progress bar")
    distinct = sorted(set(values))
    assert len([v for v in distinct if 0 < v < 100]) >= 4, f"the bar took too few values: {distinct}"

    # while the page was up, it showed the pull under way, with the image and a percentage
    live = pull_percentages(s["message"] for s in samples)
    assert any(0 < p < 100 for p in live), f"no pull percentage seen live on the page: {summary}"
    assert len(set(live)) >= 2, f"the pull message did not advance on the page: {summary}"
    # the page received the whole story, in order, ending with ready
    assert_progress_story(seen["events"])
    assert shot is not None and shot.stat().st_size > 0, "no screenshot taken mid-pull"

    # and the browser ends on the user's server, answered by the fake's responder
    final = urlsplit(seen["final_url"]).path
    assert final.startswith(app.base_url + "user/ada/"), seen["final_url"]
    assert "fakedocker jupyterhub-singleuser" in seen["final_text"], seen["final_text"]
    assert elapsed < 30, f"the browser spawn took {elapsed:.1f}s"


# -- the event stream ---------------------------------------------------------------------------
def read_events(response, timeout: float) -> list[dict]:
    """Events of a text/event-stream until ready/failed; bounded. Runs in a thread."""
    events = []
    deadline = time.monotonic() + timeout
    for line in response.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            event = json.loads(line.split(":", 1)[1])
            events.append(event)
            if event.get("ready") or event.get("failed"):
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the progress stream did not end within {timeout}s: {events}")
    return events


async def test_progress_event_stream_reports_pull(hub_factory, slow_pull_engine):
    app = await progress_hub(hub_factory, slow_pull_engine)
    add_user(app.db, app, name="bea")
    r = await api_request(app, "users", "bea", "server", method="post")
    assert r.status_code == 202, r.text  # still pulling

    # timeout: connect / between two chunks of the stream
    r = await api_request(app, "users", "bea", "server/progress", stream=True, timeout=(5, 15))
    try:
        r.raise_for_status()
        assert r.headers["content-type"] == "text/event-stream"
        events = await asyncio.wait_for(asyncio.to_thread(read_events, r, 25), 30)
    finally:
        r.close()

    assert_progress_story(events)
    assert "/user/bea/" in events[-1]["url"], events[-1]
    assert slow_pull_engine.calls.count("pull_image") == 1
