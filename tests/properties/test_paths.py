"""Volume and bind templates stay inside their directory (issue 11, §1).

For any user and server name, under each scheme, ``specs.check_confined``
either raises ValueError or returns a path that (once normalised) lies inside
the template's fixed leading directory, with no NUL byte, no ':' in a filled-in
component (it would split the engine's ``source:target:mode`` bind) and no
component over 255 bytes (``specs.NAME_MAX``); and it raises only when one of
those would fail.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dockerspawner import naming, specs

from .budget import examples
from .strategies import servernames, usernames

TEMPLATES = [
    "/srv/users/{raw_username}/work",
    "/srv/users/{raw_username}",
    "/home/{raw_username}/{raw_servername}",
    "/data/{raw_username}-{raw_servername}/notebooks",
    "/srv/{username}/{servername}",
    "/exports/{prefix}/{safe_username}.d",
    "jupyterhub-user-{raw_username}",
]


def fixed_dir(template: str) -> str:
    parts = template.split("/")
    fixed = []
    for part in parts:
        if "{" in part:
            break
        fixed.append(part)
    return "/".join(fixed)


def must_refuse(template: str, rendered: str) -> bool:
    parts, template_parts = rendered.split("/"), template.split("/")
    if "\x00" in rendered or len(parts) != len(template_parts):
        return True
    return any(
        "{" in t and (p in (".", "..") or ":" in p or len(p.encode("utf-8", "surrogatepass")) > specs.NAME_MAX)
        for t, p in zip(template_parts, parts)
    )


@examples(400)
@given(usernames, servernames, st.sampled_from(sorted(naming.SCHEMES)), st.sampled_from(TEMPLATES))
@example("..", "", "escape", "/srv/users/{raw_username}/work")
@example("a/../../etc", "", "escape", "/srv/users/{raw_username}")
@example("alice", "..", "escape", "/home/{raw_username}/{raw_servername}")
@example("ü" * 128, "", "escape", "/srv/users/{raw_username}")
# found by the contract sample (tests/contract/test_generated_bodies.py): the real
# engine refuses the bind "/srv/users/a:b:/home/jovyan:rw" with a 500
@example("a:b", "", "escape", "/srv/users/{raw_username}")
def test_templates_stay_confined_and_short(username, servername, scheme, template):
    ns = naming.template_namespace(
        username=username, servername=servername, prefix="jupyter", image="img:1", escape=naming.SCHEMES[scheme]
    )
    rendered = template.format(**ns)
    refuse = must_refuse(template, rendered)
    if refuse:
        with pytest.raises(ValueError):
            specs.check_confined(template, rendered)
        return
    path = specs.check_confined(template, rendered)
    assert path == rendered
    base = fixed_dir(template)
    if template.startswith("/"):
        normal = os.path.normpath(path)
        assert normal == base or normal.startswith(base + "/"), (template, path)
        assert normal != base, f"{path} names the template's own directory"
    assert "\x00" not in path
    assert all(len(p.encode("utf-8", "surrogatepass")) <= specs.NAME_MAX for p in path.split("/"))
