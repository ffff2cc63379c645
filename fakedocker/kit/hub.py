"""A whole JupyterHub in a test: the installed JupyterHub's own app, its
proxy (configurable-http-proxy), DockerSpawner on an engine, and a REST client.

Everything the hub writes (database, cookie secret, proxy pid file) goes to a
temporary directory, never the working directory; the config file of the
working directory is not read. Teardown stops the servers, the proxy and the
HTTP server itself rather than through ``JupyterHub.stop()``, whose
shutdown cancels every task of the event loop (including the test's
other fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.app import JupyterHub
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets.config import Config

from dockerspawner import DockerSpawner

from .engines import bridge_gateway, is_fake
from .spawners import REAL_ENGINE_TRAITS, as_config

CLIENT_SERVICE = "fakedocker-kit"

PROXY_MISSING = (
    "configurable-http-proxy (JupyterHub's proxy) is not on PATH: install it with "
    "`npm install -g configurable-http-proxy` (or put its bin directory on PATH)"
)


class SpawnFailed(Exception):
    """A spawn through the REST API failed. ``message`` is what the user sees
    (JupyterHub's progress stream: "Spawn failed: <e.jupyterhub_message>"),
    ``events`` the whole progress stream."""

    def __init__(self, message: str, events: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message = message
        self.events = events


class KitHub(JupyterHub):
    """JupyterHub itself, minus what a test process must not get: no config
    file from the working directory and no signal handlers on the test's loop."""

    def load_config_file(self, *args: Any, **kwargs: Any) -> None:
        return None

    def init_signal(self) -> None:
        return None


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now.

    All sockets stay bound until every port is chosen: separate bind-and-close
    picks can be handed the same port (seen in CI: a hub and its proxy's API
    given one port, then "Address already in use").
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def _api_message(body: bytes | None) -> str:
    try:
        return str(json.loads(body or b"{}").get("message", ""))
    except ValueError:
        return ""


def _server_path(user: str, server_name: str) -> str:
    base = f"users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server_name, safe='')}" if server_name else f"{base}/server"


def hub_config(workdir: Path, token: str, engine: Any, spawner_traits: Mapping[str, Any]) -> Config:
    """The config of a test hub: loopback only, files in ``workdir``,
    DummyAuthenticator, an admin service whose token the client uses."""
    c = Config()
    public, hub, proxy_api = free_ports(3)
    c.JupyterHub.ip = "127.0.0.1"
    c.JupyterHub.port = public
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub
    c.JupyterHub.db_url = f"sqlite:///{workdir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(workdir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = ""
    c.JupyterHub.authenticator_class = "dummy"
    c.JupyterHub.spawner_class = DockerSpawner
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.last_activity_interval = 0
    # answer a spawn request at once (202), so the progress stream has every event
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    c.JupyterHub.services = [{"name": CLIENT_SERVICE, "api_token": token}]
    c.JupyterHub.load_roles = [{"name": "admin", "services": [CLIENT_SERVICE]}]
    c.Authenticator.allow_all = True
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api}"
    c.ConfigurableHTTPProxy.auth_token = secrets.token_hex(16)
    c.ConfigurableHTTPProxy.pid_file = str(workdir / "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.DockerSpawner.engine = engine
    c.DockerSpawner.start_timeout = 30
    c.DockerSpawner.http_timeout = 20
    for key, value in spawner_traits.items():
        setattr(c.DockerSpawner, key, value)
    return c


class HubClient:
    """The REST API of one running hub, as an admin. ``app`` is the
    ``JupyterHub`` object (``app.users``, ``app.db``) for what the API does
    not show."""

    def __init__(self, app: JupyterHub, token: str, timeout: float) -> None:
        self.app = app
        self.url = app.proxy.public_url
        self.api_url = self.url.rstrip("/") + app.hub.base_url.rstrip("/") + "/api/"
        self._token = token
        self._timeout = timeout
        self._http = AsyncHTTPClient(force_instance=True)

    async def api(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = ()) -> Any:
        """One API call: the decoded JSON answer (None when empty). A status of
        400 or more raises ``HTTPClientError`` unless it is in ``ok``."""
        req = HTTPRequest(
            self.api_url + path.lstrip("/"),
            method=method.upper(),
            headers={"Authorization": f"token {self._token}"},
            body=None if body is None and method.upper() in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=self._timeout,
            allow_nonstandard_methods=True,
        )
        try:
            resp = await self._http.fetch(req)
        except HTTPClientError as e:
            if e.code in ok and e.response is not None:
                resp = e.response
            else:
                detail = e.response.body.decode(errors="replace")[:300] if e.response is not None else ""
                raise HTTPClientError(e.code, f"{method.upper()} {path}: {detail}", e.response) from None
        return json.loads(resp.body) if resp.body else None

    async def add_user(self, name: str, *, admin: bool = False, groups: tuple[str, ...] = ()) -> dict:
        """Create a user (and the groups it belongs to)."""
        model = await self.api("post", f"users/{quote(name, safe='')}", {"admin": admin})
        for group in groups:
            await self.api("post", f"groups/{quote(group, safe='')}", {}, ok=(409,))
            await self.api("post", f"groups/{quote(group, safe='')}/users", {"users": [name]})
        return model

    async def progress(self, user: str, server_name: str = "", *, ok: tuple[int, ...] = ()) -> list[dict[str, Any]]:
        """The spawn's progress stream, read to its end (ready or failed), as
        a list of events (``{"progress", "message", "ready"/"failed", ...}``).
        A status in ``ok`` gives an empty list instead of raising."""
        events: list[dict[str, Any]] = []
        buffer = bytearray()

        def on_chunk(chunk: bytes) -> None:
            buffer.extend(chunk)
            while b"\n" in buffer:
                line, _, rest = bytes(buffer).partition(b"\n")
                buffer[:] = rest
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))

        req = HTTPRequest(
            self.api_url + _server_path(user, server_name) + "/progress",
            headers={"Authorization": f"token {self._token}", "Accept": "text/event-stream"},
            streaming_callback=on_chunk,
            request_timeout=self._timeout,
        )
        try:
            await self._http.fetch(req)
        except HTTPClientError as e:
            if e.code not in ok:
                raise
        return events

    async def spawn(
        self, user: str, server_name: str = "", options: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Start a server through the API and wait until it is ready. Returns
        the progress events; raises ``SpawnFailed`` (with the user's message)
        when the spawn fails, including a refused request (4xx)."""
        try:
            await self.api("post", _server_path(user, server_name), dict(options or {}))
        except HTTPClientError as e:
            if e.response is None:
                raise
            message = _api_message(e.response.body) or str(e)
            if e.code >= 500:
                # the spawn failed before the API answered: the stream still tells it
                events = await self.progress(user, server_name, ok=(400,))
                if events and events[-1].get("failed"):
                    raise SpawnFailed(str(events[-1].get("message")), events) from None
            raise SpawnFailed(message, []) from None
        events: list[dict[str, Any]] = []
        for _attempt in range(3):
            # a stream opened after the spawn ended may hold no end event: read it again
            events = await self.progress(user, server_name, ok=(400,))
            last = events[-1] if events else {}
            if last.get("ready"):
                return events
            if last.get("failed"):
                raise SpawnFailed(str(last.get("message", "Spawn failed"))[:2000], events)
            await asyncio.sleep(0.2)
        raise SpawnFailed(f"the progress stream ended without ready or failed: {events[-3:]}"[:2000], events)

    async def server(self, user: str, server_name: str = "") -> dict[str, Any] | None:
        """The server's model from the API (None when it has none)."""
        model = await self.api("get", f"users/{quote(user, safe='')}")
        return (model.get("servers") or {}).get(server_name)

    async def stop(self, user: str, server_name: str = "") -> None:
        """Stop the server through the API and wait until the hub says it is gone."""
        await self.api("delete", _server_path(user, server_name), ok=(400,))
        deadline = time.monotonic() + self._timeout
        while await self.server(user, server_name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server {user}/{server_name} still there after {self._timeout}s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._http.close()


class HubFactory:
    """``await make_hub(engine=None, *, config=None, **spawner_traits)`` ->
    a started hub's ``HubClient``. ``config`` is more hub config (a ``Config``
    or ``{"JupyterHub": {...}}``), merged last."""

    def __init__(self, engine: Any, workdir: Path, timeout: float = 60.0) -> None:
        self.engine = engine
        self.workdir = workdir
        self.timeout = timeout
        self.clients: list[HubClient] = []
        self._tasks_before: set[asyncio.Task] = set()

    async def __call__(
        self, engine: Any = None, *, config: Config | Mapping[str, Any] | None = None, **spawner_traits: Any
    ) -> HubClient:
        if not shutil.which("configurable-http-proxy"):
            raise RuntimeError(PROXY_MISSING)
        unknown = [k for k in spawner_traits if k not in DockerSpawner.class_trait_names()]
        if unknown:
            raise TypeError(f"make_hub() got {unknown[0][:60]!r}, which is not a DockerSpawner trait")
        if not self.clients:
            self._tasks_before = set(asyncio.all_tasks())
        workdir = self.workdir / f"hub-{len(self.clients)}"
        workdir.mkdir(parents=True)
        token = secrets.token_hex(16)
        engine = engine if engine is not None else self.engine
        cfg = hub_config(workdir, token, engine, spawner_traits)
        if not is_fake(engine):
            # a real single-user server calls the hub back from its container
            cfg.JupyterHub.hub_ip = await bridge_gateway(engine)
            for key, value in REAL_ENGINE_TRAITS.items():
                if key not in spawner_traits:
                    setattr(cfg.DockerSpawner, key, value)
        cfg.merge(as_config(config))
        app = KitHub(config=cfg)
        await app.initialize([])
        app.log.propagate = True
        app.log.handlers.clear()
        client = HubClient(app, token, self.timeout)
        self.clients.append(client)
        await app.start()
        return client

    async def close(self) -> list[asyncio.Task]:
        """Stop every hub: servers, proxy, HTTP servers; then wait (bounded)
        for the tasks they left. Returns the tasks that still had to be
        cancelled (a well-behaved hub leaves none)."""
        for client in reversed(self.clients):
            app = client.app
            await client.close()
            if app.http_server:
                app.http_server.stop()
            if getattr(app, "metrics_collector", None):
                app.metrics_collector.stop()
            for pc in _periodic_callbacks(app):
                pc.stop()
            await app.cleanup()
            for pc in _periodic_callbacks(app):
                pc.stop()
            app.db.close()
            app.log.handlers.clear()
        self.clients.clear()
        from dockerspawner.index import close_indexes

        await close_indexes(self.engine)  # the spawners' shared followers of this engine
        current = asyncio.current_task()
        deadline = time.monotonic() + 5
        while True:
            engine_tasks = {id(t) for t in getattr(self.engine, "live_tasks", ())}
            stray = [
                t
                for t in asyncio.all_tasks() - self._tasks_before
                if t is not current and not t.done() and id(t) not in engine_tasks
            ]
            if not stray or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for task in stray:
            task.cancel()
        if stray:
            await asyncio.wait(stray, timeout=5)
        return stray


def _periodic_callbacks(app: Any) -> list[Any]:
    """The hub's periodic callbacks: 5+ keeps them in one dict; 4 keeps only
    the activity callback (its others end with the process)."""
    found = list(getattr(app, "_periodic_callbacks", {}).values())
    activity = getattr(app, "last_activity_callback", None)
    if activity is not None and activity not in found:
        found.append(activity)
    return found
