"""pytest plugin used by .ci/run: make sure the real-engine tests really ran.

Loaded with ``-p pytest_ci_guard`` (``.ci`` on PYTHONPATH). A test counts as a
real-engine test when it carries the ``real_engine`` marker, or when one of its
parameters (value or id) names a real engine that this run asked for in
``DOCKERSPAWNER_TEST_ENGINES`` (e.g. ``docker`` in ``fake,docker``).

The run fails (exit code 1, unless pytest already failed) when
  * a real-engine test was skipped (a skipped real test is a silent hole in CI),
    except for skip reasons matching ``DOCKERSPAWNER_CI_ALLOW_SKIP_RE``;
  * fewer than ``DOCKERSPAWNER_CI_MIN_REAL_TESTS`` (default 1) real-engine tests
    passed.
"""

from __future__ import annotations

import os
import re

import pytest

FAKE_ENGINES = {"fake", "fakedocker"}


def _requested_real_engines() -> set[str]:
    engines = os.environ.get("DOCKERSPAWNER_TEST_ENGINES", "")
    return {e.strip() for e in engines.split(",") if e.strip()} - FAKE_ENGINES


class CIGuard:
    def __init__(self, engines: set[str]) -> None:
        self.engines = engines
        self.min_real = int(os.environ.get("DOCKERSPAWNER_CI_MIN_REAL_TESTS", "1"))
        allow = os.environ.get("DOCKERSPAWNER_CI_ALLOW_SKIP_RE", "")
        self.allow_skip = re.compile(allow) if allow else None
        self.real: set[str] = set()
        self.passed: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.allowed_skips: list[tuple[str, str]] = []
        self.failed: list[str] = []
        self.collect_skips: list[tuple[str, str]] = []
        self.problems: list[str] = []
        # nothing may be left in the working directory (a hub's generated secret, a database)
        self.cwd_before = _visible_entries()

    def _is_real(self, item: pytest.Item) -> bool:
        if item.get_closest_marker("real_engine") is not None:
            return True
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            return False
        for value in callspec.params.values():
            if isinstance(value, str) and value in self.engines:
                return True
        tokens = set(re.split(r"[-\[\]]", callspec.id))
        return bool(tokens & self.engines)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.real = {item.nodeid for item in items if self._is_real(item)}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.collect_skips.append((report.nodeid, str(reason)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.real or hasattr(report, "wasxfail"):
            return
        if report.skipped:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            entry = (report.nodeid, str(reason))
            if self.allow_skip is not None and self.allow_skip.search(str(reason)):
                self.allowed_skips.append(entry)
            else:
                self.skipped.append(entry)
        elif report.failed:
            self.failed.append(report.nodeid)
        elif report.passed and report.when == "call":
            self.passed.append(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped:
            self.problems.append(f"{len(self.skipped)} real-engine test(s) were SKIPPED")
        if len(self.passed) < self.min_real:
            self.problems.append(
                f"only {len(self.passed)} real-engine test(s) passed "
                f"(DOCKERSPAWNER_CI_MIN_REAL_TESTS={self.min_real})"
            )
        left = sorted(_visible_entries() - self.cwd_before)
        if left:
            self.problems.append(f"the suite left {len(left)} file(s) in {os.getcwd()}: {', '.join(left[:10])}")
        if self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        tr = terminalreporter
        tr.section("ci guard: real-engine tests")
        tr.write_line(
            f"engines {sorted(self.engines)}: {len(self.real)} real-engine tests collected, "
            f"{len(self.passed)} passed, {len(self.failed)} failed reports, "
            f"{len(self.skipped)} skipped, {len(self.allowed_skips)} allowed skips"
        )
        for nodeid, reason in self.skipped[:30]:
            tr.write_line(f"SKIPPED real-engine test {nodeid}: {reason}")
        for nodeid, reason in self.collect_skips[:10]:
            tr.write_line(f"module skipped at collection: {nodeid}: {reason}")
        for problem in self.problems:
            tr.write_line(f"CI GUARD FAILURE: {problem}", red=True, bold=True)


def _visible_entries() -> set[str]:
    return {name for name in os.listdir() if not name.startswith(".")}


def pytest_configure(config: pytest.Config) -> None:
    engines = _requested_real_engines()
    if engines:
        config.pluginmanager.register(CIGuard(engines), "dockerspawner-ci-guard")
