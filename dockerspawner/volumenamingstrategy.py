"""Volume naming strategies for ``DockerSpawner.format_volume_name`` (as in 14)."""

from __future__ import annotations

from typing import Any


def default_format_volume_name(template: str, spawner: Any) -> str:
    """Fill the template with the spawner's namespace ({username} is escaped)."""
    return template.format(**spawner.template_namespace())


def escaped_format_volume_name(template: str, spawner: Any) -> str:
    """Like the default, with {username} explicitly the escaped name (14 kept both)."""
    ns = spawner.template_namespace()
    ns["username"] = spawner.escaped_name
    return template.format(**ns)
