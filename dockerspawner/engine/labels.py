"""Label filters as Docker applies them: every item must hold (AND).

Podman 4.3 ORs several ``label`` items on the volume list and the event stream
(``{"label": ["a=1", "b=2"]}`` gives what has ``a=1`` *or* ``b=2``). The
docker-py backend re-applies the filter to what such an engine returns, so the
protocol means one thing on every engine; on Docker the check is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def labels_match(labels: Mapping[str, str] | None, wanted: list[str]) -> bool:
    """All of ``key`` / ``key=value`` in ``wanted`` hold for ``labels``."""
    labels = labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def label_items(filters: Mapping[str, Any] | None) -> list[str]:
    """The ``label`` items of docker-py style ``filters`` when there are
    several string items (the case an OR-ing engine gets wrong), else []."""
    value = (filters or {}).get("label")
    items = value if isinstance(value, list) else [value]
    if len(items) < 2 or not all(isinstance(i, str) for i in items):
        return []
    return items
