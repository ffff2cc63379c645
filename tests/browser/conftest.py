"""A headless Debian chromium driven by Selenium, for the spawn progress tests.

The browser and its driver come from Debian (``apt-get install chromium
chromium-driver``, done by ``.ci/setup``); nothing is ever downloaded: the
driver path is given explicitly, so Selenium Manager never runs. Without them
the browser tests skip on a laptop but FAIL in CI (env ``CI`` set).

Paths can be overridden with ``DOCKERSPAWNER_TEST_CHROMIUM`` and
``DOCKERSPAWNER_TEST_CHROMEDRIVER``. Every process the driver started
(chromedriver, chromium and its helpers) must be gone after the test.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from unavailable import unavailable

# the hub fixture lives next to the hub tests (tests/hub/conftest.py); with
# pytest's default import mode ``tests/`` is on sys.path, so it is ``hub.conftest``
try:
    from hub.conftest import hub_factory as hub_factory
except ImportError:  # other import modes: load it by path
    _spec = importlib.util.spec_from_file_location(
        "dockerspawner_tests_hub_conftest", Path(__file__).resolve().parents[1] / "hub" / "conftest.py"
    )
    _hub = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_hub)
    hub_factory = _hub.hub_factory

CHROMIUM = os.environ.get("DOCKERSPAWNER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DOCKERSPAWNER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")

#: Flags that keep chromium headless and off the network (only loopback here).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,800",
)


@pytest.fixture(autouse=True)
def _own_cwd(tmp_path, monkeypatch):
    """JupyterHub writes its proxy's pid file (and may write a cookie secret) in
    the working directory, and a hub that finds a pid file there kills that
    proxy: hubs of other test runs in the same checkout would kill ours."""
    monkeypatch.chdir(tmp_path)


def _unavailable(reason: str) -> None:
    unavailable("the browser (bash .ci/setup installs it)", reason)


def _check_browser() -> None:
    if importlib.util.find_spec("selenium") is None:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            _unavailable(f"{path} not found: apt-get install {pkg}")


# -- processes ---------------------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, starttime) from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), fields[0], fields[19])
    return table


def descendants(pid: int) -> dict[int, str]:
    """``pid`` and all its descendants: pid -> starttime (to not confuse a reused pid)."""
    table = _proc_table()
    if pid not in table:
        return {}
    found = {pid: table[pid][2]}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _state, start) in table.items():
            if ppid == parent and child not in found:
                found[child] = start
                frontier.append(child)
    return found


def alive(procs: dict[int, str]) -> dict[int, str]:
    """Those of ``procs`` still running (a zombie counts as ended)."""
    table = _proc_table()
    return {
        pid: start for pid, start in procs.items() if pid in table and table[pid][2] == start and table[pid][1] != "Z"
    }


# -- the browser -------------------------------------------------------------------------------
def _start_driver(profile: Path, log: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # an explicit driver path: Selenium Manager (which downloads drivers) never runs
    service = Service(executable_path=CHROMEDRIVER, log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(5)
    return driver


def _quit(driver) -> dict[int, str]:
    """Quit the driver; returns the processes it had started."""
    procs: dict[int, str] = {}
    process = getattr(driver.service, "process", None)
    if process is not None:
        procs = descendants(process.pid)
    try:
        driver.quit()
    except Exception as e:  # noqa: BLE001 - the leak check below still runs
        print(f"driver.quit() failed: {e}")
    return procs


@pytest.fixture
async def browser(tmp_path) -> AsyncIterator:
    """A Selenium ``webdriver.Chrome`` on headless Debian chromium.

    Selenium is synchronous: call it from a thread (``asyncio.to_thread``) so the
    hub, running in this event loop, keeps answering the browser.
    """
    _check_browser()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = tmp_path / "chromedriver.log"
    try:
        driver = await asyncio.wait_for(asyncio.to_thread(_start_driver, profile, log), 60)
    except Exception as e:  # noqa: BLE001 - any failure to start means no browser
        _unavailable(f"chromium via {CHROMEDRIVER} did not start: {e!r} (log: {log})")
    started = descendants(driver.service.process.pid)
    try:
        yield driver
    finally:
        procs = await asyncio.to_thread(_quit, driver)
        procs.update(started)
        deadline = time.monotonic() + 10
        left = alive(procs)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            left = alive(procs)
        for pid in left:  # only processes this fixture started, by pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert not left, f"chromium/chromedriver processes left after driver.quit(): {sorted(left)}"
