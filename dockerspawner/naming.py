"""Object names, escaping schemes and owner labels, in one place.

Names of objects (containers, services, volumes) are how the spawner finds the
objects of existing deployments again after an upgrade, so the default scheme
must reproduce the names of established dockerspawner 14.x exactly for every
printable user and server name.  Where the established scheme was ambiguous it
is repaired here in ways that cannot change such a name:

* bytes below 0x10 get two hex digits (only control characters have them);
* server names that differ only in case still share an established name, so
  the spawner labels every object with its owner (:func:`owner_labels`) and,
  when the established name is held by another owner's object, switches to
  :func:`distinct_name` and keeps that name in its state.

Everything here is pure: no engine, no hub, no IO.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Callable, Mapping

import escapism

__all__ = [
    "LABEL_MANAGED",
    "LABEL_SERVER",
    "LABEL_SPEC_HASH",
    "LABEL_USER",
    "MANAGED_BY",
    "NAMESPACE_KEYS",
    "SCHEMES",
    "default_name_template",
    "distinct_name",
    "escape_default",
    "escape_legacy",
    "escape_safe",
    "labels_owner",
    "object_name",
    "owner_key",
    "owner_labels",
    "resolve_escape",
    "template_namespace",
    "valid_container_name",
    "valid_image_reference",
]

# -- label keys -------------------------------------------------------------

LABEL_USER = "org.jupyterhub.user"
LABEL_SERVER = "org.jupyterhub.server"
LABEL_SPEC_HASH = "org.jupyterhub.spec-hash"
LABEL_MANAGED = "org.jupyterhub.managed-by"
MANAGED_BY = "dockerspawner"

# -- escaping ---------------------------------------------------------------

# escapism only reads these sets (it mutates `safe` only when the escape
# character is in it, which is never the case here).
_DEFAULT_SAFE = set(string.ascii_lowercase + string.digits)
_DEFAULT_ESCAPE_CHAR = "-"
_LEGACY_SAFE = set(string.ascii_letters + string.digits + "-")
_LEGACY_ESCAPE_CHAR = "_"

# The only characters whose UTF-8 form has a byte below 0x10 are U+0000..U+000F
# themselves (multi-byte sequences use bytes >= 0x80), and none is printable.
_SHORT_HEX = re.compile("([\x00-\x0f])")


def escape_default(s: str) -> str:
    """Escape to ``[a-z0-9-]``, byte for byte the established default.

    escapism writes ``%X`` (one hex digit below 0x10), so ``"\\x01" + "2"``
    and ``"\\x12"`` both became ``-12``.  Those bytes alone now get two digits;
    every other character goes through escapism unchanged, which is what
    keeps the names of existing deployments (printable names) identical.
    The result is lowercased because escapism 1.1 writes upper-case hex and
    the established names are lower-case.
    """
    out = []
    for i, part in enumerate(_SHORT_HEX.split(s)):
        if i % 2:  # a captured control character
            out.append(f"{_DEFAULT_ESCAPE_CHAR}{ord(part):02x}")
        elif part:
            out.append(
                escapism.escape(
                    part, safe=_DEFAULT_SAFE, escape_char=_DEFAULT_ESCAPE_CHAR
                ).lower()
            )
    return "".join(out)


def escape_legacy(s: str) -> str:
    """The pre-12 scheme (``escape="legacy"``), kept bit-exact on purpose.

    Deployments that chose it have objects named by it, including its
    one-hex-digit ambiguity and upper-case hex; changing either would orphan
    them.  Collisions it allows are caught by the owner labels instead.
    """
    return escapism.escape(s, safe=_LEGACY_SAFE, escape_char=_LEGACY_ESCAPE_CHAR)


def escape_safe(s: str) -> str:
    """Readable DNS-label component: ``s`` itself when already one, else slug+hash.

    Unlike the default scheme it keeps plain names readable (``alice`` stays
    ``alice``) and is always a valid DNS label, so names fit Swarm services
    and hostnames.  A name that had to be changed carries ``---`` and a hash
    of the original, which an unchanged name can never contain, so distinct
    inputs give distinct results (up to a 32-bit hash collision).
    """
    return escapism.safe_slug(s)


SCHEMES: dict[str, Callable[[str], str]] = {
    "escape": escape_default,
    "legacy": escape_legacy,
    "safe": escape_safe,
}


def resolve_escape(escape: str | Callable[[str], str]) -> Callable[[str], str]:
    """Turn the ``escape`` config value into a function, failing at config time.

    A typo in ``c.DockerSpawner.escape`` would otherwise surface only at the
    first spawn, or silently rename every container.
    """
    if isinstance(escape, str):
        if escape in SCHEMES:
            return SCHEMES[escape]
    elif callable(escape):
        return escape
    choices = ", ".join(repr(name) for name in SCHEMES)
    raise ValueError(
        f"Invalid escape {escape!r}: expected one of {choices} "
        "or a callable escape(str) -> str"
    )


# -- templates --------------------------------------------------------------

NAMESPACE_KEYS = (
    "username",
    "safe_username",
    "raw_username",
    "servername",
    "raw_servername",
    "imagename",
    "prefix",
)


def template_namespace(
    *,
    username: str,
    servername: str,
    prefix: str,
    image: str,
    escape: Callable[[str], str],
) -> dict[str, str]:
    """The keys ``name_template`` (and other templates) may use.

    ``servername`` is escaped after lowercasing, as established: it is what
    existing named-server objects are called, so it cannot change for the
    established schemes (the resulting ``Foo``/``foo`` collision is handled
    by :func:`distinct_name`).  The opt-in ``safe`` scheme has no such past,
    so it escapes the server name as given and maps the default server ("")
    to "" rather than to a hashed placeholder.
    """
    escaped_user = escape(username)
    if escape is escape_safe:
        escaped_server = escape(servername) if servername else ""
    else:
        escaped_server = escape(servername.lower())
    return {
        "username": escaped_user,
        "safe_username": escaped_user,
        "raw_username": username,
        "servername": escaped_server,
        "raw_servername": servername,
        "imagename": image.replace("/", "-").replace(":", "-"),
        "prefix": prefix,
    }


def default_name_template(servername: str) -> str:
    """Established default; named servers need the ``--`` part to differ from the default server."""
    if servername:
        return "{prefix}-{username}--{servername}"
    return "{prefix}-{username}"


def _template_keys(template: str) -> list[str]:
    """Top-level keys of a format string (``a`` for ``{a.b[0]!r:>3}``)."""
    keys = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        keys.append(re.split(r"[.\[]", field, maxsplit=1)[0])
    return keys


def object_name(
    template: str, namespace: Mapping[str, str], *, scheme: str = "escape"
) -> str:
    """Render a name template; under ``safe`` the result is a DNS label <= 63.

    Unknown keys are reported by name at once, because a bare ``KeyError``
    from ``str.format`` in a spawn log does not tell an administrator which
    config line is wrong.  Under ``safe`` a rendered name that is already a
    valid DNS label is kept as is (readable); otherwise it is slugged and a
    hash of the whole rendered name is appended, so names that differ only
    beyond the cut or in dropped characters still differ.
    """
    valid = ", ".join(sorted(namespace))
    try:
        keys = _template_keys(template)
    except ValueError as e:
        raise ValueError(f"name template {template!r} is malformed: {e}") from None
    for key in keys:
        if key == "" or key.isdigit():
            raise ValueError(
                f"name template {template!r} uses a positional field; "
                f"use named fields: {valid}"
            )
        if key not in namespace:
            raise ValueError(
                f"name template {template!r} uses unknown key {key!r}; "
                f"valid keys are: {valid}"
            )
    rendered = template.format(**namespace)
    if scheme == "safe" and not escapism.is_valid_object_name(rendered):
        # safe_slug hashes every invalid name; max_length=63 is the DNS label limit
        rendered = escapism.safe_slug(rendered, max_length=63)
    return rendered


# -- names and owners -------------------------------------------------------

_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def valid_container_name(name: str) -> bool:
    """Docker's own rule, so a bad template fails before the engine is asked."""
    return _CONTAINER_NAME.fullmatch(name) is not None


def owner_key(username: str, servername: str) -> str:
    """One string per (user, server), exactly as the hub spells them.

    A JSON array cannot be split two ways, whatever characters the names
    contain, and it keeps case, so ``Foo`` and ``foo`` get different keys.
    ASCII-only output so that hashing it never fails on odd code points.
    """
    return json.dumps([username, servername], ensure_ascii=True, separators=(",", ":"))


_HASH_LENGTH = 8


def distinct_name(name: str, owner_key: str, *, max_length: int = 63) -> str:
    """A stable alternative to ``name`` for one owner, used when ``name`` is taken.

    The suffix depends only on the owner, so the same owner always derives
    the same name (it is also kept in the spawner state).  It is ``-x`` plus
    hex: the default scheme never writes ``-`` before a non-hex character, so
    no escaped user or server name can produce it.  ``name`` is shortened to
    keep the result within ``max_length`` (63: DNS label / Swarm service
    limit); the suffix ends in a hex digit, so a valid DNS label stays one.
    A cut that ends in ``-`` drops it: ``<cut>-`` + ``-x<hash>`` would read
    as ``<user>--x<hash>``, the established name of a server ``x<hash>``.
    The spawner must still check that the derived name is not held too.
    """
    digest = hashlib.sha256(owner_key.encode("utf-8", "surrogatepass")).hexdigest()
    suffix = f"-x{digest[:_HASH_LENGTH]}"
    keep = max_length - len(suffix)
    if keep < 1:
        raise ValueError(f"max_length must be at least {len(suffix) + 1}, not {max_length}")
    base = name[:keep]
    if len(name) > keep:
        base = base.rstrip("-") or base
    return base + suffix


def owner_labels(username: str, servername: str) -> dict[str, str]:
    """Labels naming the owner of an object, so reuse can check ownership.

    Values are the raw names: labels take any string, and the escaped names
    are exactly what may collide.
    """
    return {
        LABEL_USER: username,
        LABEL_SERVER: servername,
        LABEL_MANAGED: MANAGED_BY,
    }


def labels_owner(labels: Mapping[str, str] | None) -> tuple[str, str] | None:
    """``(username, servername)`` of an object we created, else ``None``.

    ``None`` means "owner unknown" (no labels, created by something else or by
    an older spawner that did not label); the caller decides whether state
    alone justifies adopting such an object.
    """
    if not labels or labels.get(LABEL_MANAGED) != MANAGED_BY:
        return None
    username = labels.get(LABEL_USER)
    servername = labels.get(LABEL_SERVER)
    if not isinstance(username, str) or not isinstance(servername, str):
        return None
    return username, servername


# -- image references -------------------------------------------------------

# The distribution reference grammar the engine parses (docker/distribution
# reference/regexp.go), so a bad reference is refused before any engine call.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?"
)
_IMAGE_ID = re.compile(r"(?:sha256:)?[0-9a-f]{12,64}")
_NAME_TOTAL_MAX = 255


def valid_image_reference(ref: str) -> bool:
    """Whether ``ref`` is an image reference or id the engine would accept."""
    if not isinstance(ref, str) or not ref or len(ref) > 512:
        return False
    if _IMAGE_ID.fullmatch(ref):
        return True
    if not _REFERENCE.fullmatch(ref):
        return False
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return len(name) <= _NAME_TOTAL_MAX
