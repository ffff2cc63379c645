"""What a test does when something it needs cannot run: skip on a developer
machine, fail in CI (env ``CI`` set), where a skip would hide a broken bring-up."""

from __future__ import annotations

import os

import pytest


def unavailable(what: str, reason: str) -> None:
    """Skip, or in CI fail saying that ``what`` must come up, and why it did not."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so {what} must come up: {reason}", pytrace=False)
    pytest.skip(reason)
