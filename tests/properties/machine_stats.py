"""Print what a run of the fault machine did (for the evidence table in tests/README.md).

    python -m tests.properties.machine_stats   # runs the CI budget, prints examples, steps, faults
"""

from __future__ import annotations

import time
from collections import Counter

from .test_machine import LONG, RUNS, HubMachine


def main() -> None:
    began = time.monotonic()
    HubMachine.TestCase("runTest").runTest()
    took = time.monotonic() - began
    steps = [n for n, _ in RUNS]
    kinds: Counter[str] = Counter()
    for _, counts in RUNS:
        kinds.update(counts)
    print(f"examples {len(RUNS)}, steps {sum(steps)} (min {min(steps)}, >={LONG}: {sum(n >= LONG for n in steps)}), {took:.0f} s")
    print(", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
