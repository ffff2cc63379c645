"""What hypothesis may produce for the names and configs a hub hands the spawner.

User and server names: any unicode except lone surrogates (a hub gets names
from UTF-8 requests, which cannot carry them), control characters included,
from empty (server) to far longer than any engine limit. A user name is never
empty (the hub refuses it); the default server's name is "".
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

_TRICKY = st.sampled_from(list("\x00\x01\x0f\x10\x12\x7f-_.@/\\%{}:aAzZKk09ü€😀 \u212a\u0130\u00df\ufeff"))
_ANY = st.characters(exclude_categories=["Cs"])
_CHARS = _TRICKY | _ANY

short_text = st.text(_CHARS, max_size=24)
long_text = st.text(_CHARS, min_size=60, max_size=400)
name_text = short_text | long_text

usernames = name_text.filter(bool)
servernames = st.just("") | name_text
printable = st.text(st.characters(exclude_categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn"]), max_size=40)

#: Admins' prefixes: short, already valid names (they are config, not user input).
prefixes = st.sampled_from(["jupyter", "hub", "j", "lab-2", "x"])

DNS_LABEL_CHARS = set(string.ascii_lowercase + string.digits + "-")


def is_dns_label(name: str) -> bool:
    return (
        0 < len(name) <= 63
        and set(name) <= DNS_LABEL_CHARS
        and name[0] != "-"
        and name[-1] != "-"
    )


# -- create bodies -------------------------------------------------------------------------------

#: The engine's own minimums, which a config must meet (the spawner does not
#: check them; the engine answers 400 with a clear message).
MIN_MEM = 6 * 1024 * 1024
MIN_CPU = 0.01

_ENV_KEY = st.text(st.sampled_from(string.ascii_letters + string.digits + "_."), min_size=1, max_size=20)
_LABEL_KEY = st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True).filter(lambda k: not k.startswith("org.jupyterhub"))
_VALUE = st.text(_CHARS, max_size=60)
VOLUME_TEMPLATES = ("{prefix}-user-{username}", "{prefix}-{username}--{servername}-home")
BIND_TEMPLATES = ("/tmp/ev-binds/{raw_username}/work", "/tmp/ev-binds/{username}/{raw_servername}")


@st.composite
def plans(draw, *, prefix: str, image: str, labels: dict[str, str] | None = None) -> Any:
    """A ``specs.ContainerPlan`` as the spawner resolves it from a config that passes
    validation: names from the family, ``volumes``/binds filled and confined, limits
    at or above the engine's minimums, any text where the engine takes any text."""
    from dockerspawner import naming, specs

    username, servername = draw(usernames), draw(servernames)
    scheme = draw(st.sampled_from(sorted(naming.SCHEMES)))
    ns = naming.template_namespace(
        username=username, servername=servername, prefix=prefix, image=image, escape=naming.SCHEMES[scheme]
    )
    name = naming.object_name(naming.default_name_template(servername), ns, scheme=scheme)
    if draw(st.booleans()):
        name = naming.distinct_name(name, naming.owner_key(username, servername))
    binds: dict[str, dict[str, str]] = {}
    for i, template in enumerate(draw(st.lists(st.sampled_from(VOLUME_TEMPLATES + BIND_TEMPLATES), max_size=3, unique=True))):
        try:
            source = specs.check_confined(template, template.format(**ns))
        except ValueError:
            continue  # the spawner refuses this user a storage path (400): no body at all
        binds[source] = {"bind": f"/home/jovyan/v{i}", "mode": draw(st.sampled_from(["rw", "ro"]))}
    env = draw(st.dictionaries(_ENV_KEY, _VALUE, max_size=4))
    env.update(JUPYTERHUB_USER=username, JUPYTERHUB_SERVER_NAME=servername, JUPYTERHUB_API_TOKEN="0" * 32)
    network = draw(st.sampled_from(["bridge", "none"]))
    return specs.ContainerPlan(
        name=name,
        image=image,
        command=draw(st.lists(_VALUE, min_size=1, max_size=4)),
        env=env,
        labels={**draw(st.dictionaries(_LABEL_KEY, _VALUE, max_size=3)), **(labels or {}),
                **naming.owner_labels(username, servername)},
        port=draw(st.integers(1, 65535)),
        network_name=network,
        use_internal_ip=network != "bridge" or draw(st.booleans()),
        use_internal_hostname=draw(st.booleans()),
        binds=binds,
        mem_limit=draw(st.none() | st.integers(MIN_MEM, 2**40)),
        cpu_limit=draw(st.none() | st.floats(MIN_CPU, 64, allow_nan=False)),
    )
