"""Spawn errors: a short message for the user, the detail and the fix for the admin.

``jupyterhub_message`` is what JupyterHub shows on the spawn page, in the
progress stream and (5+) in REST answers; ``log_message`` (what JupyterHub 4
puts in REST answers) is the same short text. ``str(e)`` and ``e.detail`` carry
the admin's story, which the spawner logs.
"""

from __future__ import annotations

import inspect
from typing import Any

from tornado import web


class SpawnError(web.HTTPError):
    """A spawn failure: a short message for the user, the story and the fix for the admin.

    Every place a hub version shows a failure to the user gets the short text:
    ``jupyterhub_message`` (spawn page and progress, REST answers on 6),
    ``log_message`` (REST answers on 4 and 5) and ``str(e)`` (4's spawn page).
    The admin's text is ``e.detail``, which the spawner logs when a start fails
    (it may hold log tails and engine output, never fit for users).

    An HTTPError, so that JupyterHub logs it as one line rather than as an
    unexpected exception with a traceback.
    """

    def __init__(self, user_message: str, detail: str | None = None):
        super().__init__(500, user_message.replace("%", "%%"))
        self.jupyterhub_message = user_message
        self.detail = detail or user_message

    def __str__(self) -> str:
        return self.jupyterhub_message


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _short(text: str, limit: int = 300) -> str:
    """One line of an engine message, for users."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _clip(text: Any, limit: int = 80) -> str:
    """A bounded repr of user input for messages (never echo a megabyte back)."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"
