"""Names of existing deployments must not change; the known collisions must be gone."""

import string

import escapism
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from dockerspawner import naming
from dockerspawner.naming import (
    LABEL_MANAGED,
    LABEL_SERVER,
    LABEL_USER,
    default_name_template,
    distinct_name,
    escape_default,
    escape_legacy,
    escape_safe,
    labels_owner,
    object_name,
    owner_key,
    owner_labels,
    resolve_escape,
    template_namespace,
    valid_container_name,
)


def established_escape(s):
    """dockerspawner 14.x default escape, written out from its source."""
    return escapism.escape(
        s, safe=set(string.ascii_lowercase + string.digits), escape_char="-"
    ).lower()


def established_legacy(s):
    return escapism.escape(
        s, safe=set(string.ascii_letters + string.digits + "-"), escape_char="_"
    )


def name_for(username, servername="", *, escape="escape", prefix="jupyter", template=None):
    ns = template_namespace(
        username=username,
        servername=servername,
        prefix=prefix,
        image="quay.io/jupyterhub/singleuser:5.2",
        escape=resolve_escape(escape),
    )
    if template is None:
        template = default_name_template(servername)
    return object_name(template, ns, scheme=escape if isinstance(escape, str) else "escape")


# text that stresses the escapers: control bytes, the escape characters, case, non-ASCII
tricky_text = st.text(
    st.sampled_from("\x00\x01\x0f\x10\x12-_.@aAzZ029ü€😀 ")
    | st.characters(exclude_categories=["Cs"]),
)
any_text = st.text(st.characters(exclude_categories=["Cs"]))


# -- default scheme: established names ---------------------------------------

@pytest.mark.parametrize(
    "raw, escaped",
    [
        ("-", "-2d"),
        ("@", "-40"),
        ("A", "-41"),
        ("ü", "-c3-bc"),
        ("alice", "alice"),
        ("a.b@example.com", "a-2eb-40example-2ecom"),
        ("Bob", "-42ob"),
        ("user-1", "user-2d1"),
        ("ünïcode", "-c3-bcn-c3-afcode"),
        ("", ""),
    ],
)
def test_escape_default_examples(raw, escaped):
    assert escape_default(raw) == escaped
    assert established_escape(raw) == escaped


@pytest.mark.parametrize(
    "username, servername, name",
    [
        ("alice", "", "jupyter-alice"),
        ("a.b@example.com", "", "jupyter-a-2eb-40example-2ecom"),
        ("Bob", "", "jupyter--42ob"),
        ("user-1", "", "jupyter-user-2d1"),
        ("ünïcode", "", "jupyter--c3-bcn-c3-afcode"),
        ("alice", "lab", "jupyter-alice--lab"),
        ("alice", "Lab", "jupyter-alice--lab"),
        ("alice", "my server", "jupyter-alice--my-20server"),
        ("Bob", "GPU-1", "jupyter--42ob--gpu-2d1"),
    ],
)
def test_established_object_names(username, servername, name):
    assert name_for(username, servername) == name
    assert valid_container_name(name)


@pytest.mark.parametrize(
    "raw, escaped",
    [
        ("alice", "alice"),
        ("Bob", "Bob"),
        ("user-1", "user-1"),
        ("a.b@example.com", "a_2Eb_40example_2Ecom"),
        ("ü", "_C3_BC"),
        ("a_b", "a_5Fb"),
    ],
)
def test_escape_legacy_examples(raw, escaped):
    assert escape_legacy(raw) == escaped
    assert name_for(raw, escape="legacy") == "jupyter-" + escaped


@given(any_text)
def test_escape_legacy_is_the_established_one(s):
    assert escape_legacy(s) == established_legacy(s)


@given(any_text.map(lambda s: "".join(c for c in s if c.isprintable())))
def test_printable_names_are_unchanged(s):
    assert escape_default(s) == established_escape(s)


@given(st.text(st.characters(min_codepoint=0x10, exclude_categories=["Cs"])))
def test_only_bytes_below_0x10_are_changed(s):
    assert escape_default(s) == established_escape(s)


def test_control_byte_collision_fixed():
    # the established flaw, shown on the established function
    assert established_escape("\x01" + "2") == established_escape("\x12") == "-12"
    assert escape_default("\x01" + "2") == "-012"
    assert escape_default("\x12") == "-12"
    assert escape_default("\x00") == "-00"
    assert escape_default("a\x0fb") == "a-0fb"


@given(tricky_text)
def test_escape_default_is_lossless(s):
    escaped = escape_default(s)
    assert set(escaped) <= set(string.ascii_lowercase + string.digits + "-")
    assert escapism.unescape(escaped, escape_char="-") == s


@given(tricky_text, tricky_text)
@example("\x01" + "2", "\x12")  # the established collision
def test_escape_default_is_injective(a, b):
    assume(a != b)
    assert escape_default(a) != escape_default(b)


@given(tricky_text.filter(bool), tricky_text)
def test_default_names_are_valid_container_names(username, servername):
    assert valid_container_name(name_for(username, servername))
    assert valid_container_name(name_for(username, servername, escape="legacy"))


# -- case collision of server names -------------------------------------------

def test_server_case_collision_and_distinct_name():
    foo = name_for("alice", "Foo")
    assert foo == name_for("alice", "foo") == "jupyter-alice--foo"
    key_upper = owner_key("alice", "Foo")
    key_lower = owner_key("alice", "foo")
    assert key_upper != key_lower
    derived = distinct_name(foo, key_upper)
    assert derived != foo
    assert derived != distinct_name(foo, key_lower)
    assert derived == distinct_name(foo, owner_key("alice", "Foo"))  # stable
    assert derived.startswith(foo)
    assert valid_container_name(derived)
    assert escapism.is_valid_object_name(derived)


@given(tricky_text, tricky_text)
def test_distinct_name_stays_valid_and_short(username, servername):
    for scheme in ("escape", "safe"):
        name = name_for(username or "u", servername, escape=scheme)
        derived = distinct_name(name, owner_key(username, servername))
        assert derived != name
        assert len(derived) <= 63
        assert valid_container_name(derived)
        if scheme == "safe":
            assert escapism.is_valid_object_name(derived)


def test_distinct_name_max_length():
    long = "jupyter-" + "a" * 100
    assert len(distinct_name(long, "k", max_length=128)) == 118
    assert len(distinct_name(long, "k")) == 63
    with pytest.raises(ValueError, match="max_length"):
        distinct_name("a", "k", max_length=5)


@given(tricky_text, tricky_text, tricky_text, tricky_text)
def test_owner_key_is_unambiguous(u1, s1, u2, s2):
    assume((u1, s1) != (u2, s2))
    assert owner_key(u1, s1) != owner_key(u2, s2)


def test_owner_key_keeps_separators_apart():
    assert owner_key("a/b", "") != owner_key("a", "b")
    assert owner_key("a", "/b") != owner_key("a/", "b")


# -- safe scheme --------------------------------------------------------------

@given(any_text)
def test_escape_safe_always_valid(s):
    assert escapism.is_valid_object_name(escape_safe(s))


@given(
    tricky_text.filter(bool),
    tricky_text,
    st.sampled_from(["jupyter", "Jupyter Hub", "", "x" * 70]),
)
def test_safe_object_names_are_dns_labels(username, servername, prefix):
    name = name_for(username, servername, escape="safe", prefix=prefix)
    assert escapism.is_valid_object_name(name), name
    assert len(name) <= 63


@given(tricky_text.filter(bool), tricky_text, tricky_text.filter(bool), tricky_text)
def test_safe_object_names_are_injective(u1, s1, u2, s2):
    assume((u1, s1) != (u2, s2))
    assert name_for(u1, s1, escape="safe") != name_for(u2, s2, escape="safe")


@pytest.mark.parametrize(
    "username, servername, name",
    [
        ("alice", "", "jupyter-alice"),
        ("alice", "lab", "jupyter-alice--lab"),
        ("user-1", "", "jupyter-user-1"),
    ],
)
def test_safe_keeps_plain_names(username, servername, name):
    assert name_for(username, servername, escape="safe") == name


@pytest.mark.parametrize(
    "username, servername, readable",
    [
        ("Alice", "", "alice"),
        ("a.b@example.com", "", "a-b-example-com"),
        ("alice", "Foo", "foo"),
        ("a" * 80, "", "aaaaaaaaaa"),
        ("alice", "s" * 80, "alice"),
    ],
)
def test_safe_changed_names_are_readable_and_hashed(username, servername, readable):
    name = name_for(username, servername, escape="safe")
    assert readable in name
    assert "---" in name
    assert escapism.is_valid_object_name(name)


def test_safe_does_not_fold_server_case():
    assert name_for("alice", "Foo", escape="safe") != name_for("alice", "foo", escape="safe")


def test_safe_keeps_a_valid_custom_template_and_fixes_an_invalid_one():
    assert name_for("alice", escape="safe", template="{prefix}-{username}-x") == "jupyter-alice-x"
    name = name_for("alice", escape="safe", template="{prefix}.{username}_{imagename}")
    assert escapism.is_valid_object_name(name)
    assert name.startswith("jupyter-alice-quay")


# -- resolve_escape, templates ------------------------------------------------

def test_resolve_escape_names_and_callables():
    assert resolve_escape("escape") is escape_default
    assert resolve_escape("legacy") is escape_legacy
    assert resolve_escape("safe") is escape_safe
    custom = str.upper
    assert resolve_escape(custom) is custom


@pytest.mark.parametrize("bad", ["Legacy", "bogus", "", None, 42, ["safe"]])
def test_resolve_escape_rejects(bad):
    with pytest.raises(ValueError) as info:
        resolve_escape(bad)
    msg = str(info.value)
    assert repr(bad) in msg
    for choice in ("'escape'", "'legacy'", "'safe'", "callable"):
        assert choice in msg


def test_custom_escape_is_used_for_user_and_lowercased_server():
    ns = template_namespace(
        username="Al", servername="Srv", prefix="p", image="a/b/c:1", escape=lambda s: f"<{s}>"
    )
    assert ns == {
        "username": "<Al>",
        "safe_username": "<Al>",
        "raw_username": "Al",
        "servername": "<srv>",
        "raw_servername": "Srv",
        "imagename": "a-b-c-1",
        "prefix": "p",
    }
    assert set(ns) == set(naming.NAMESPACE_KEYS)


def test_default_name_template():
    assert default_name_template("") == "{prefix}-{username}"
    assert default_name_template("x") == "{prefix}-{username}--{servername}"


def test_unknown_template_key():
    ns = template_namespace(
        username="a", servername="", prefix="p", image="i", escape=escape_default
    )
    with pytest.raises(ValueError) as info:
        object_name("{prefix}-{user}", ns)
    msg = str(info.value)
    assert "'user'" in msg
    assert "username" in msg and "raw_servername" in msg and "imagename" in msg


@pytest.mark.parametrize("template", ["{}-x", "{0}-x", "{prefix"])
def test_bad_templates(template):
    ns = template_namespace(
        username="a", servername="", prefix="p", image="i", escape=escape_default
    )
    with pytest.raises(ValueError, match="name template"):
        object_name(template, ns)


def test_template_attribute_access_checks_the_key():
    ns = template_namespace(
        username="a", servername="", prefix="p", image="i", escape=escape_default
    )
    assert object_name("{prefix!s}-{username:>3}", ns) == "p-  a"
    with pytest.raises(ValueError, match="'nope'"):
        object_name("{nope.upper}", ns)


@pytest.mark.parametrize(
    "name, ok",
    [
        ("jupyter-alice", True),
        ("a_b.c-d", True),
        ("A1", True),
        ("a", False),
        ("", False),
        ("-a", False),
        ("_a", False),
        ("a b", False),
        ("a/b", False),
        ("jupyter-alice\n", False),
        ("ü1", False),
    ],
)
def test_valid_container_name(name, ok):
    assert valid_container_name(name) is ok


# -- labels -------------------------------------------------------------------

def test_owner_labels_round_trip():
    labels = owner_labels("Alice", "Foo")
    assert labels == {LABEL_USER: "Alice", LABEL_SERVER: "Foo", LABEL_MANAGED: "dockerspawner"}
    assert labels_owner(labels) == ("Alice", "Foo")
    assert labels_owner(owner_labels("alice", "")) == ("alice", "")
    assert labels_owner({**labels, "other": "x"}) == ("Alice", "Foo")


@pytest.mark.parametrize(
    "labels",
    [
        None,
        {},
        {LABEL_USER: "alice", LABEL_SERVER: ""},  # not ours
        {LABEL_USER: "alice", LABEL_SERVER: "", LABEL_MANAGED: "kubespawner"},
        {LABEL_MANAGED: "dockerspawner", LABEL_SERVER: ""},
        {LABEL_MANAGED: "dockerspawner", LABEL_USER: "alice"},
    ],
)
def test_labels_owner_unknown(labels):
    assert labels_owner(labels) is None


def test_label_keys():
    assert naming.LABEL_SPEC_HASH == "org.jupyterhub.spec-hash"
    assert LABEL_MANAGED == "org.jupyterhub.managed-by"
