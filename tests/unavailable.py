"""What a test does when something it needs cannot run: skip on a developer
machine, fail in CI (env ``CI`` set), where a skip would hide a broken bring-up.

Every "skip here, fail in CI" of the suite goes through this module, so that
the rule (and the CI variable it reads) lives in one place."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip, or in CI fail saying that ``what`` is missing, and why."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so a test may not skip for want of {what}: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root(what: str, needs: str) -> None:
    """``what`` needs root (for ``needs``, e.g. network namespaces): unavailable without it."""
    if os.geteuid() != 0:
        unavailable("root", f"{what} needs root ({needs})")
