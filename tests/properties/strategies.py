"""What hypothesis may produce for the names and configs a hub hands the spawner.

User and server names: any unicode except lone surrogates (a hub gets names
from UTF-8 requests, which cannot carry them), control characters included,
from empty (server) to far longer than any engine limit. A user name is never
empty (the hub refuses it); the default server's name is "".
"""

from __future__ import annotations

import string

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
