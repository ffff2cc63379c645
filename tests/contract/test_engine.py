"""Contract: the engine-level calls (version, ping, info)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.engine


async def test_version_names_engine_and_api_version(engine):
    v = await engine.version()
    assert isinstance(v["Version"], str) and v["Version"]
    assert re.fullmatch(r"\d+\.\d+", v["ApiVersion"]), v["ApiVersion"]


async def test_api_version_is_recent_enough(engine):
    v = await engine.version()
    major, minor = (int(x) for x in v["ApiVersion"].split("."))
    assert (major, minor) >= (1, 40)


async def test_ping_answers_true(engine):
    assert await engine.ping() is True


async def test_info_reports_swarm_state(engine):
    info = await engine.info()
    assert "Swarm" in info
    assert info["Swarm"]["LocalNodeState"] in {"inactive", "pending", "active", "error", "locked"}


async def test_info_has_engine_basics(engine):
    info = await engine.info()
    for key in ("Containers", "Images", "ServerVersion"):
        assert key in info, key
    assert isinstance(info["Containers"], int)
