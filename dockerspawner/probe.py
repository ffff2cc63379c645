"""Whether a server answers HTTP yet: one cheap attempt.

A start asks this until its server answers, before the hub asks the same
question itself; a hub starting hundreds of servers asks it hundreds of times a
second. One request written on an asyncio stream costs half the hub CPU of an
HTTP client's fetch (0.8 against 1.6-1.9 ms on 2 busy cores), and the only
thing read is the status line. As for the hub, any status below 500 counts,
even 404: the server is up.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote


async def answers_http(host: str, port: int, path: str, *, connect_timeout: float = 2, read_timeout: float = 5) -> bool:
    """True once ``GET path`` on ``host:port`` gets a status line below 500."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        target = quote(path, safe="/%:@!$&'()*+,;=~")
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode("ascii"))
        status = await asyncio.wait_for(reader.readline(), read_timeout)
    except (OSError, asyncio.TimeoutError, ValueError):
        return False
    finally:
        writer.close()
    parts = status.split(None, 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() and int(parts[1]) < 500
