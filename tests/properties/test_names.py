"""Every name the family makes is one the engine takes (issue 11, §1).

For any user and server name (any unicode, empty server, very long, control
characters) and each escape scheme:

- container names (``naming.object_name`` with the default template),
  derived names (``naming.distinct_name``) and volume names from
  ``jupyterhub-user-{username}`` style templates match the engine's name rule
  (``naming.valid_container_name``); a volume name over 255 bytes (the engine
  makes a directory of it) is refused by ``specs.check_confined`` instead;
- under ``safe`` the container name, and so the hostname (``use_internal_hostname``
  sets it to the container name) and a Swarm service name, is a DNS label <= 63;
  every derived name is <= 63;
- for printable names the default scheme is the established escaping.

Uniqueness, exactly what holds for the default scheme (N = established name,
D = ``distinct_name(N, owner_key)``, what the spawner uses when N is held by
another owner's labelled object):

1. N(u1, s1) == N(u2, s2)  iff  u1 == u2 and s1.lower() == s2.lower()
   (server names are lowercased, as established: the only collisions);
2. D(u, s) is never an established name of any owner (so a derived name cannot
   take another server's established name);
3. D(u1, s1) == D(u2, s2) only if the owners' 32-bit digests collide; hypothesis
   checks D differs for the case-collision pairs of 1.

Under ``legacy`` and ``safe`` names can share forms with derived names
(``-x`` is plain text there); the owner labels the spawner checks on reuse are
what keeps owners apart.
"""

from __future__ import annotations

import hashlib
import string

import escapism
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from dockerspawner import naming, specs

from .budget import examples
from .strategies import is_dns_label, name_text, prefixes, printable, servernames, usernames

SCHEMES = sorted(naming.SCHEMES)
VOLUME_TEMPLATES = [
    "jupyterhub-user-{username}",
    "jupyterhub-user-{username}{servername}",
    "{prefix}-{username}--{servername}-home",
    "data-{safe_username}",
]


def established(username: str, servername: str, scheme: str, prefix: str = "jupyter") -> str:
    ns = naming.template_namespace(
        username=username, servername=servername, prefix=prefix, image="img:1", escape=naming.SCHEMES[scheme]
    )
    return naming.object_name(naming.default_name_template(servername), ns, scheme=scheme)


def derived(username: str, servername: str, scheme: str, prefix: str = "jupyter") -> str:
    return naming.distinct_name(established(username, servername, scheme, prefix), naming.owner_key(username, servername))


def _escaped_part(part: str) -> str | None:
    """The name ``part`` is the default escaping of, or None if it is no escaping's result."""
    if not part:
        return None
    try:
        raw = escapism.unescape(part, escape_char="-")
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if naming.escape_default(raw) == part else None


def parse_established(name: str, prefix: str) -> tuple[str, str] | None:
    """(user, lowercased server) whose default-scheme established name is ``name``, else None."""
    if not name.startswith(prefix + "-"):
        return None
    rest = name[len(prefix) + 1 :]
    user_part, sep, server_part = rest.partition("--")
    user = _escaped_part(user_part)
    if user is None:
        return None
    if not sep:
        return user, ""
    server = _escaped_part(server_part)
    if server is None or server.lower() != server:
        return None
    return user, server


@examples(300)
@given(usernames, servernames, st.sampled_from(SCHEMES), prefixes)
def test_container_and_derived_names_are_valid(username, servername, scheme, prefix):
    name = established(username, servername, scheme, prefix)
    assert naming.valid_container_name(name), name
    d = naming.distinct_name(name, naming.owner_key(username, servername))
    assert naming.valid_container_name(d) and len(d) <= 63, d
    if scheme == "safe":
        assert is_dns_label(name), name
        assert is_dns_label(d), d


@examples(300)
@given(usernames, servernames, st.sampled_from(SCHEMES), st.sampled_from(VOLUME_TEMPLATES))
def test_volume_names_are_valid_or_refused(username, servername, scheme, template):
    ns = naming.template_namespace(
        username=username, servername=servername, prefix="jupyter", image="img:1", escape=naming.SCHEMES[scheme]
    )
    rendered = template.format(**ns)
    try:
        volume = specs.check_confined(template, rendered)
    except ValueError as e:
        assert len(rendered.encode()) > specs.NAME_MAX, f"refused a fine name {rendered!r}: {e}"
        return
    assert volume == rendered
    assert naming.valid_container_name(volume) and len(volume.encode()) <= specs.NAME_MAX, volume


@examples(300)
@given(printable, printable)
def test_printable_names_are_the_established_escaping(username, servername):
    esc = lambda s: escapism.escape(s, safe=set(string.ascii_lowercase + string.digits), escape_char="-").lower()  # noqa: E731
    assume(username)
    expected = f"jupyter-{esc(username)}" + (f"--{esc(servername.lower())}" if servername else "")
    assert established(username, servername, "escape") == expected


def _near(s: str) -> st.SearchStrategy[str]:
    """Names close to ``s``: itself, its case variants, a character more or less."""
    return st.sampled_from([s, s.lower(), s.upper(), s.swapcase(), s[:-1], s + "-", s + "\x00"]) | servernames


def assert_collide_only_by_server_case(u1: str, s1: str, u2: str, s2: str) -> None:
    same_name = established(u1, s1, "escape") == established(u2, s2, "escape")
    assert same_name == (u1 == u2 and s1.lower() == s2.lower())


@examples(400)
@given(st.data())
def test_established_names_collide_only_by_server_case(data):
    u1, s1 = data.draw(usernames), data.draw(servernames)
    assert_collide_only_by_server_case(u1, s1, data.draw(_near(u1).filter(bool)), data.draw(_near(s1)))


@pytest.mark.parametrize("pair", [("a", "Lab", "a", "lab"), ("\x01" + "2", "", "\x12", "")])
def test_established_names_collide_only_by_server_case_examples(pair):
    assert_collide_only_by_server_case(*pair)


@examples(200)
@given(usernames, name_text.filter(bool))
def test_case_variants_get_different_derived_names(username, servername):
    variants = {servername, servername.lower(), servername.upper(), servername.swapcase()}
    variants = {v for v in variants if v.lower() == servername.lower()}
    names = {derived(username, v, "escape") for v in variants}
    assert len(names) == len(variants)


# Names whose first 53 characters end in "-" (inside an escape): cut there,
# "<cut>" + "-x<hash>" read as "<user>--x<hash>", the established name of the
# server "x<hash>" of another user; the second one is what hypothesis found.
_CUT_AT_DASH = ("a" * 44 + "-", "", "jupyter")
_FOUND = ("::::\x80\x80\x80\x80\U00010000:", "", "hub")


@examples(400)
@given(usernames, servernames, prefixes)
@example(*_CUT_AT_DASH)
@example(*_FOUND)
def test_derived_names_are_never_established_names(username, servername, prefix):
    d = derived(username, servername, "escape", prefix)
    owner = parse_established(d, prefix)
    assert owner is None, f"{d} is also the established name of {owner}"


@examples(300)
@given(usernames, servernames, usernames, servernames)
def test_derived_names_differ_unless_digests_collide(u1, s1, u2, s2):
    assume((u1, s1) != (u2, s2))
    if derived(u1, s1, "escape") == derived(u2, s2, "escape"):
        digest = lambda u, s: hashlib.sha256(naming.owner_key(u, s).encode("utf-8", "surrogatepass")).hexdigest()[:8]  # noqa: E731
        assert digest(u1, s1) == digest(u2, s2)


@examples(100)
@given(usernames, servernames)
def test_parse_established_inverts_the_default_scheme(username, servername):
    """The oracle above is right: it finds the owner of every established name."""
    assert parse_established(established(username, servername, "escape"), "jupyter") == (username, servername.lower())
