"""How long the properties run: quick in CI, long on request.

Every property takes ``@examples(n)``: ``n`` examples in the CI budget (the whole
directory stays well under a minute on 2 cores), ``n * DOCKERSPAWNER_HYPOTHESIS_SCALE``
for a long run, e.g.::

    DOCKERSPAWNER_HYPOTHESIS_SCALE=100 python -m pytest tests/properties -q

Settings are applied per test (not as a global profile) so that loading this
directory does not change other suites' hypothesis settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("DOCKERSPAWNER_HYPOTHESIS_SCALE") or 1))


def examples(n: int) -> settings:
    return settings(
        max_examples=n * SCALE,
        deadline=None,  # 2 shared cores: timing is not what these properties are about
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
