"""The README's downstream example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _example(name: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if f"def {name}" in b]
    return block


_ns: dict = {}
exec(compile(_example("test_gpu_users_get_a_device_request"), str(README), "exec"), _ns)
test_gpu_users_get_a_device_request = _ns["test_gpu_users_get_a_device_request"]
