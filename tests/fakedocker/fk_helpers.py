"""Helpers for the fake's own tests."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

from contract.helpers import make_tar  # noqa: F401 - one tar builder for both suites
from fakedocker import BUSYBOX_FILES

BUSYBOX = "local/busybox:test"


def _get(url: str) -> tuple[int, dict[str, str], bytes] | OSError:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError as e:
        return e


async def http_get(url: str) -> Any:
    """One GET in a thread: (status, headers, body), or the OSError."""
    return await asyncio.to_thread(_get, url)


def published(port: int = 8888, ip: str = "127.0.0.1") -> dict[str, Any]:
    """Spec keys publishing ``port`` on a free host port (with init, so stops are quick)."""
    return {"ports": [port], "host_config": {"port_bindings": {port: (ip, None)}, "init": True}}


#: What busybox httpd serves in the test image (fakedocker's files are the one source).
HTTPD_PAGE: bytes = BUSYBOX_FILES["/var/www/index.html"]
