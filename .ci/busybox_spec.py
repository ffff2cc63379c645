"""What ``local/busybox:test`` holds besides busybox itself, read from ONE place.

fakedocker's ``BUSYBOX_FILES`` and ``BUSYBOX_DIRS`` (fakedocker/images.py) say
which files the fake's test image has; the real image is built from the same
values, so the page httpd serves, the users and the groups cannot drift apart
again. The module is parsed, not imported: this runs with any python3, before
the project's venv exists.

    busybox_spec.py json           canonical JSON of the spec (hashed by make-busybox-rootfs)
    busybox_spec.py write ROOT     create the directories and files under ROOT
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "fakedocker" / "images.py"
NAMES = ("BUSYBOX_FILES", "BUSYBOX_DIRS")


def load(source: Path = SOURCE) -> dict[str, object]:
    """``{"files": {path: text}, "dirs": [path, ...]}`` from the fake's module."""
    found: dict[str, object] = {}
    for node in ast.parse(source.read_text(), str(source)).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in NAMES and node.value is not None:
            found[target.id] = ast.literal_eval(node.value)
    missing = [n for n in NAMES if n not in found]
    if missing:
        raise SystemExit(f"{source}: no literal {', '.join(missing)}; the test image is built from them")
    files = {path: data.decode() for path, data in sorted(found["BUSYBOX_FILES"].items())}
    return {"files": files, "dirs": sorted(found["BUSYBOX_DIRS"])}


def write(spec: dict, root: Path) -> None:
    for d in spec["dirs"]:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, text in spec["files"].items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def main(argv: list[str]) -> int:
    if argv[:1] == ["json"] and len(argv) == 1:
        print(json.dumps(load(), sort_keys=True, separators=(",", ":")))
        return 0
    if argv[:1] == ["write"] and len(argv) == 2:
        write(load(), Path(argv[1]))
        return 0
    print("usage: busybox_spec.py json | write ROOT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
