"""Every established DockerSpawner trait: its default and its effect on the engine.

Each trait gets (at least) one test that pins the established default
(dockerspawner 14.x, see DESIGN.md "Compatibility facts") and one that shows what
the trait does, asserted on what reached the engine (the fake's containers or the
recorded create call), never on the value the test set.

Runs on fakedocker only; no network beyond loopback.
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser

import escapism
import jupyterhub
import pytest
from tornado import web
from traitlets.config import Config

from dockerspawner import DockerSpawner
from fakedocker.validation import NVIDIA

HUB_MAJOR_MINOR = ".".join(jupyterhub.__version__.split(".")[:2])
DEFAULT_IMAGE = f"quay.io/jupyterhub/singleuser:{HUB_MAJOR_MINOR}"
SINGLEUSER = {"Cmd": ["jupyterhub-singleuser"]}
IMAGE_A = "example.org/lab/python:1"
IMAGE_B = "example.org/lab/r:2"


# -- helpers -------------------------------------------------------------------------


@pytest.fixture
def fake(fake_docker):
    """The fake with the default image and two alternatives present."""
    for ref in (DEFAULT_IMAGE, IMAGE_A, IMAGE_B):
        fake_docker.add_image(ref, config=dict(SINGLEUSER))
    return fake_docker


async def _no_wait(ip: str, port: int) -> None:
    """Stand-in for the readiness wait where the fake cannot answer (container IPs)."""


def skip_readiness_wait(sp: DockerSpawner) -> DockerSpawner:
    # fakedocker allocates container IPs but nothing listens on them (README,
    # known difference 2), so a server reached by IP/hostname cannot answer here.
    sp._wait_for_server = _no_wait
    return sp


def last_create_spec(fake) -> dict:
    call = fake.calls.filter("create_container")[-1]
    return call.args["spec"]


async def inspect(fake, sp: DockerSpawner) -> dict:
    return await fake.inspect_container(sp.object_id)


def env_of(info: dict) -> dict[str, str]:
    return dict(line.split("=", 1) for line in info["Config"]["Env"] or [])


async def names(fake) -> set[str]:
    return {c["Names"][0].lstrip("/") for c in await fake.list_containers(all=True)}


def messages(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


# -- defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trait, expected",
    [
        ("image", DEFAULT_IMAGE),
        ("cmd", None),
        ("allowed_images", []),
        ("pull_policy", "ifnotpresent"),
        ("prefix", "jupyter"),
        ("name_template", "{prefix}-{username}"),
        ("escape", "escape"),
        ("volumes", {}),
        ("read_only_volumes", {}),
        ("mounts", []),
        ("network_name", "bridge"),
        ("use_internal_ip", False),
        ("use_internal_hostname", False),
        ("host_ip", "127.0.0.1"),
        ("links", {}),
        ("port", 8888),
        ("ip", "0.0.0.0"),
        ("mem_limit", None),
        ("cpu_limit", None),
        ("extra_create_kwargs", {}),
        ("extra_host_config", {}),
        ("remove", False),
        ("env_keep", []),
        ("environment", {}),
        ("client_kwargs", {}),
        ("tls_config", {}),
        ("use_docker_client_env", True),
        ("debug", False),
        ("args", []),
    ],
)
def test_trait_default(make_spawner, monkeypatch, trait, expected):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    sp = make_spawner("alice")
    assert getattr(sp, trait) == expected


def test_post_start_cmd_default_is_off(make_spawner):
    assert not make_spawner("alice").post_start_cmd


def test_engine_default_is_docker():
    assert DockerSpawner.class_traits()["engine"].default() == "docker"


def test_name_template_default_for_named_servers(make_spawner):
    assert make_spawner("alice", "lab").name_template == "{prefix}-{username}--{servername}"


@pytest.mark.parametrize("network, expected", [("bridge", False), ("host", False), ("jhub-net", True)])
def test_use_internal_ip_default_follows_network(make_spawner, network, expected):
    assert make_spawner("alice", network_name=network).use_internal_ip is expected


# -- image and command -------------------------------------------------------------------


async def test_default_image_reaches_the_engine(make_spawner, fake):
    sp = make_spawner("alice")
    await sp.start()
    info = await inspect(fake, sp)
    assert info["Config"]["Image"] == DEFAULT_IMAGE
    assert env_of(info)["JUPYTER_IMAGE_SPEC"] == DEFAULT_IMAGE
    assert env_of(info)["JUPYTER_IMAGE"] == DEFAULT_IMAGE
    await sp.stop()


async def test_image_trait(make_spawner, fake):
    sp = make_spawner("alice", image=IMAGE_B)
    await sp.start()
    info = await inspect(fake, sp)
    assert info["Config"]["Image"] == IMAGE_B
    assert env_of(info)["JUPYTER_IMAGE_SPEC"] == IMAGE_B
    await sp.stop()


@pytest.mark.parametrize(
    "image_cmd, cmd, args, expected",
    [
        (["/opt/conda/bin/jupyterhub-singleuser", "--from-image"], None, [],
         ["/opt/conda/bin/jupyterhub-singleuser", "--from-image"]),
        (["/opt/conda/bin/jupyterhub-singleuser", "--from-image"], None, ["--Extra=1"],
         ["/opt/conda/bin/jupyterhub-singleuser", "--from-image", "--Extra=1"]),
        (["ignored"], ["/usr/local/bin/jupyterhub-singleuser", "--x"], [],
         ["/usr/local/bin/jupyterhub-singleuser", "--x"]),
        (["ignored"], "/usr/local/bin/jupyterhub-singleuser", ["--a", "--b"],
         ["/usr/local/bin/jupyterhub-singleuser", "--a", "--b"]),
        (None, ["jupyterhub-singleuser"], ["--debug"], ["jupyterhub-singleuser", "--debug"]),
    ],
    ids=["image-cmd", "image-cmd+args", "list", "string+args", "no-image-cmd"],
)
async def test_cmd_and_args(make_spawner, fake_docker, image_cmd, cmd, args, expected):
    fake_docker.add_image("example.org/cmd:1", config={"Cmd": image_cmd})
    sp = make_spawner("alice", image="example.org/cmd:1", cmd=cmd, args=args)
    await sp.start()
    info = await inspect(fake_docker, sp)
    assert [info["Path"], *info["Args"]] == expected
    assert last_create_spec(fake_docker)["command"] == expected
    await sp.stop()


async def test_image_without_cmd_and_no_cmd_is_a_clear_error(make_spawner, fake_docker):
    fake_docker.add_image("example.org/nocmd:1", config={"Cmd": None})
    sp = make_spawner("alice", image="example.org/nocmd:1")
    with pytest.raises(Exception) as excinfo:
        await sp.start()
    text = f"{excinfo.value.detail} {excinfo.value.jupyterhub_message}"
    assert "example.org/nocmd:1" in text
    assert "DockerSpawner.cmd" in excinfo.value.detail
    assert fake_docker.calls.count("create_container") == 0
    assert await names(fake_docker) == set()


# -- allowed_images and the options form ----------------------------------------------------


async def _async_allowed(sp):
    return {"Python": IMAGE_A, "R": IMAGE_B}


@pytest.mark.parametrize(
    "allowed, requested, expected",
    [
        ([IMAGE_A, IMAGE_B], IMAGE_B, IMAGE_B),
        ({"Python": IMAGE_A, "R": IMAGE_B}, "R", IMAGE_B),
        ({"Python": IMAGE_A, "R": IMAGE_B}, "Python", IMAGE_A),
        (lambda sp: [IMAGE_A, IMAGE_B], IMAGE_A, IMAGE_A),
        (lambda sp: {f"for-{sp.user.name}": IMAGE_B}, "for-alice", IMAGE_B),
        (_async_allowed, "R", IMAGE_B),
        ("*", "example.org/anything:9", "example.org/anything:9"),
    ],
    ids=["list", "dict-alias", "dict-alias-2", "callable", "callable-uses-spawner", "async", "star"],
)
async def test_allowed_images_choice(make_spawner, fake, allowed, requested, expected):
    fake.add_image("example.org/anything:9", config=dict(SINGLEUSER))
    sp = make_spawner("alice", allowed_images=allowed)
    sp.user_options = {"image": requested}
    await sp.start()
    info = await inspect(fake, sp)
    assert info["Config"]["Image"] == expected
    assert env_of(info)["JUPYTER_IMAGE_SPEC"] == expected
    assert env_of(info)["JUPYTER_IMAGE"] == expected
    # 14: both "/" and ":" become "-", so {imagename} makes a valid container name
    assert sp.template_namespace()["imagename"] == expected.replace("/", "-").replace(":", "-")
    await sp.stop()


@pytest.mark.parametrize(
    "allowed, requested",
    [
        ([], IMAGE_A),  # empty: users may not choose (GHSA-hfgr-h3vc-p6c2)
        ({}, IMAGE_A),
        ([IMAGE_A], IMAGE_B),
        ({"Python": IMAGE_A}, "R"),
        (lambda sp: [IMAGE_A], IMAGE_B),
    ],
    ids=["empty-list", "empty-dict", "not-in-list", "not-in-dict", "not-in-callable"],
)
async def test_allowed_images_rejects(make_spawner, fake, allowed, requested):
    sp = make_spawner("alice", allowed_images=allowed)
    sp.user_options = {"image": requested}
    with pytest.raises(web.HTTPError) as excinfo:
        await sp.start()
    assert excinfo.value.status_code == 400
    assert fake.calls.count("create_container") == 0
    assert fake.calls.count("pull_image") == 0


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.selects: list[dict] = []
        self.options: list[dict] = []
        self.stack: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "select":
            self.selects.append(a)
            self.stack.append("select")
        elif tag == "option":
            assert self.stack == ["select"], "option outside its select"
            self.options.append(a)
            self.stack.append("option")

    def handle_endtag(self, tag):
        if tag in ("select", "option"):
            assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "option":
            self.options[-1]["text"] = self.options[-1].get("text", "") + data


def parse_form(html_text: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html_text)
    parser.close()
    assert parser.stack == [], "unclosed select/option"
    return parser


@pytest.mark.parametrize(
    "allowed, image, user_image, values, selected",
    [
        ([IMAGE_A, IMAGE_B], IMAGE_A, None, [IMAGE_A, IMAGE_B], IMAGE_A),
        ([IMAGE_A, IMAGE_B], IMAGE_B, IMAGE_A, [IMAGE_A, IMAGE_B], IMAGE_B),
        ({"Python & co": IMAGE_A, "R": IMAGE_B}, IMAGE_B, None, ["Python & co", "R"], "R"),
        (lambda sp: [IMAGE_A, IMAGE_B], IMAGE_B, None, [IMAGE_A, IMAGE_B], IMAGE_B),
        (_async_allowed, IMAGE_A, None, ["Python", "R"], "Python"),
    ],
    ids=["list", "list-user-choice", "dict-escaped", "callable", "async"],
)
async def test_options_form_select(make_spawner, allowed, image, user_image, values, selected):
    sp = make_spawner("alice", allowed_images=allowed, image=image)
    if user_image:
        sp.user_options = {"image": user_image}
    form = await sp.get_options_form()  # what JupyterHub's spawn page renders
    parsed = parse_form(form)
    assert [s.get("name") for s in parsed.selects] == ["image"]
    assert [o["value"] for o in parsed.options] == values
    assert [o["value"] for o in parsed.options if "selected" in o] == [selected]
    # every offered value is accepted back through options_from_form + start's check
    for value in values:
        assert sp.options_from_form({"image": [value]}) == {"image": value}


@pytest.mark.parametrize("allowed", [[], {}, [IMAGE_A], {"only": IMAGE_A}, lambda sp: [IMAGE_A]])
async def test_options_form_empty_with_at_most_one_image(make_spawner, allowed):
    sp = make_spawner("alice", allowed_images=allowed)
    assert await sp.get_options_form() == ""


@pytest.mark.parametrize(
    "formdata, expected",
    [({"image": ["x"]}, {"image": "x"}), ({"image": ["a", "b"]}, {"image": "a"}), ({}, {})],
)
def test_options_from_form(make_spawner, formdata, expected):
    assert make_spawner("alice").options_from_form(formdata) == expected


async def test_options_form_choice_round_trip(make_spawner, fake):
    """What the form offers, submitted back, starts that image."""
    sp = make_spawner("alice", allowed_images={"Python": IMAGE_A, "R": IMAGE_B})
    parsed = parse_form(await sp.get_options_form())
    chosen = [o["value"] for o in parsed.options if o["value"] == "R"][0]
    sp.user_options = sp.options_from_form({"image": [chosen]})
    await sp.start()
    assert (await inspect(fake, sp))["Config"]["Image"] == IMAGE_B
    await sp.stop()


# -- pull_policy --------------------------------------------------------------------------------


async def test_pull_ifnotpresent_does_not_pull_a_present_image(make_spawner, fake):
    sp = make_spawner("alice")
    await sp.start()
    assert fake.calls.count("pull_image") == 0
    await sp.stop()


async def test_pull_ifnotpresent_pulls_a_missing_image(make_spawner, fake_docker):
    fake_docker.registry.add(DEFAULT_IMAGE, config=dict(SINGLEUSER))
    sp = make_spawner("alice")
    await sp.start()
    assert fake_docker.calls.count("pull_image") == 1
    assert (await inspect(fake_docker, sp))["Config"]["Image"] == DEFAULT_IMAGE
    await sp.stop()


@pytest.mark.parametrize("policy", ["always", "Always", "ALWAYS"])
async def test_pull_always_pulls_even_when_present(make_spawner, fake, policy):
    fake.registry.add(DEFAULT_IMAGE, config={"Cmd": ["jupyterhub-singleuser", "--from-registry"]})
    sp = make_spawner("alice", pull_policy=policy)
    await sp.start()
    assert fake.calls.count("pull_image") == 1
    info = await inspect(fake, sp)
    assert info["Args"] == ["--from-registry"]  # the pulled image, not the old local one
    await sp.stop()


async def test_pull_never_fails_clearly_when_missing(make_spawner, fake_docker):
    fake_docker.registry.add(DEFAULT_IMAGE, config=dict(SINGLEUSER))  # pullable, but must not be pulled
    sp = make_spawner("alice", pull_policy="never")
    with pytest.raises(Exception) as excinfo:
        await sp.start()
    text = f"{excinfo.value} {getattr(excinfo.value, 'jupyterhub_message', '')}"
    assert DEFAULT_IMAGE in text
    assert "pull" in text.lower()
    assert fake_docker.calls.count("pull_image") == 0
    assert fake_docker.calls.count("create_container") == 0


async def test_pull_never_uses_a_present_image(make_spawner, fake):
    sp = make_spawner("alice", pull_policy="Never")
    await sp.start()
    assert fake.calls.count("pull_image") == 0
    assert (await inspect(fake, sp))["State"]["Running"]
    await sp.stop()


async def test_pull_skip_neither_inspects_nor_pulls(make_spawner, fake):
    sp = make_spawner("alice", pull_policy="skip", cmd=["jupyterhub-singleuser"])
    await sp.start()
    assert fake.calls.count("inspect_image") == 0
    assert fake.calls.count("pull_image") == 0
    assert (await inspect(fake, sp))["State"]["Running"]
    await sp.stop()


def test_pull_policy_rejects_unknown(make_spawner):
    from traitlets import TraitError

    with pytest.raises(TraitError):
        make_spawner("alice", pull_policy="sometimes")


# -- names: prefix, name_template, escape ---------------------------------------------------------


@pytest.mark.parametrize(
    "username, servername, traits, expected",
    [
        ("alice", "", {}, "jupyter-alice"),
        ("alice", "lab", {}, "jupyter-alice--lab"),
        ("alice", "", {"prefix": "hub"}, "hub-alice"),
        ("alice", "lab", {"prefix": "hub"}, "hub-alice--lab"),
        ("alice", "", {"name_template": "nb-{username}-{prefix}"}, "nb-alice-jupyter"),
        ("alice", "lab", {"name_template": "{prefix}_{raw_username}_{raw_servername}"}, "jupyter_alice_lab"),
        ("a.b@example.com", "", {}, "jupyter-a-2eb-40example-2ecom"),
        ("a.b@example.com", "", {"escape": "escape"}, "jupyter-a-2eb-40example-2ecom"),
        ("a.b@example.com", "", {"escape": "legacy"}, "jupyter-a_2Eb_40example_2Ecom"),
        ("a.b@example.com", "", {"escape": "safe"},
         "jupyter-" + escapism.safe_slug("a.b@example.com")),
        ("a.b@example.com", "", {"escape": lambda s: s.replace(".", "-dot-").replace("@", "-at-")},
         "jupyter-a-dot-b-at-example-dot-com"),
        ("Ünïcode", "", {}, "jupyter--c3-9cn-c3-afcode"),
    ],
    ids=["default", "named", "prefix", "prefix-named", "template", "template-named",
         "escape-default", "escape", "legacy", "safe", "callable", "unicode"],
)
async def test_container_names(make_spawner, fake, username, servername, traits, expected):
    sp = make_spawner(username, servername, **traits)
    await sp.start()
    assert (await inspect(fake, sp))["Name"] == "/" + expected
    assert await names(fake) == {expected}
    assert sp.get_state()["object_name"] == expected
    await sp.stop()


def test_escape_rejects_unknown_scheme(make_spawner):
    # at config time, naming the value and the choices, not at the first spawn
    with pytest.raises(Exception, match="rot13.*'escape', 'legacy', 'safe'"):
        make_spawner("alice", escape="rot13")


async def test_named_servers_differing_in_case_do_not_share(make_spawner, fake):
    upper = make_spawner("alice", "Foo")
    lower = make_spawner("alice", "foo")
    await upper.start()
    await lower.start()
    assert upper.object_id != lower.object_id
    assert upper.object_name != lower.object_name
    for sp in (upper, lower):
        info = await inspect(fake, sp)
        assert info["State"]["Running"]
        assert info["Config"]["Labels"]["org.jupyterhub.server"] == sp.name
    assert len(await names(fake)) == 2
    # the established name went to whichever came first
    assert upper.object_name == "jupyter-alice--foo"
    await upper.stop()
    await lower.stop()


async def test_another_owners_container_is_never_adopted(make_spawner, fake):
    other_id = await fake.create_container({
        "name": "jupyter-alice",
        "image": DEFAULT_IMAGE,
        "command": ["sleep", "600"],
        "labels": {
            "org.jupyterhub.user": "bob",
            "org.jupyterhub.server": "",
            "org.jupyterhub.managed-by": "dockerspawner",
        },
    })
    await fake.start_container(other_id)
    before = await fake.inspect_container(other_id)
    sp = make_spawner("alice")
    await sp.start()
    assert sp.object_id != other_id
    assert sp.object_name != "jupyter-alice"
    mine = await inspect(fake, sp)
    assert mine["Config"]["Labels"]["org.jupyterhub.user"] == "alice"
    after = await fake.inspect_container(other_id)
    assert after["State"]["Running"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert after["Config"] == before["Config"]
    assert not fake.calls.filter("stop_container", ref=other_id)
    assert not fake.calls.filter("remove_container", ref=other_id)
    await sp.stop()
    assert (await fake.inspect_container(other_id))["State"]["Running"]


# -- volumes and mounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username, traits, binds, mounts",
    [
        ("alice", {"volumes": {"/srv/data/{username}": "/home/{username}/work"}},
         ["/srv/data/alice:/home/alice/work:rw"],
         [("bind", "/srv/data/alice", "/home/alice/work", True)]),
        ("a.b", {"volumes": {"home-{username}": "/home/jovyan"}},
         ["home-a-2eb:/home/jovyan:rw"],
         [("volume", "home-a-2eb", "/home/jovyan", True)]),
        ("alice", {"volumes": {"/srv/{username}": {"bind": "/data/{username}", "mode": "ro"}}},
         ["/srv/alice:/data/alice:ro"],
         [("bind", "/srv/alice", "/data/alice", False)]),
        ("alice", {"volumes": {"/srv/{raw_username}": {"bind": "/data", "mode": "z"}}},
         ["/srv/alice:/data:z"],
         [("bind", "/srv/alice", "/data", True)]),
        ("alice", {"read_only_volumes": {"/srv/shared/{username}": "/shared"}},
         ["/srv/shared/alice:/shared:ro"],
         [("bind", "/srv/shared/alice", "/shared", False)]),
        ("alice", {"volumes": {"vol-{username}": "/home/jovyan"},
                   "read_only_volumes": {"/srv/shared": "/shared"}},
         ["vol-alice:/home/jovyan:rw", "/srv/shared:/shared:ro"],
         [("volume", "vol-alice", "/home/jovyan", True), ("bind", "/srv/shared", "/shared", False)]),
        ("alice", {"volumes": {"v-{username}": "/v"},
                   "format_volume_name": lambda template, sp: template.format(username="custom-" + sp.user.name)},
         ["v-custom-alice:/v:rw"],
         [("volume", "v-custom-alice", "/v", True)]),
    ],
    ids=["host-path", "named-volume-escaped", "dict-ro", "dict-z", "read-only", "both", "format_volume_name"],
)
async def test_volumes(make_spawner, fake, username, traits, binds, mounts):
    sp = make_spawner(username, **traits)
    await sp.start()
    info = await inspect(fake, sp)
    assert sorted(info["HostConfig"]["Binds"]) == sorted(binds)
    got = []
    for m in info["Mounts"]:
        source = m["Name"] if m["Type"] == "volume" else m["Source"]
        got.append((m["Type"], source, m["Destination"], m["RW"]))
    assert sorted(got) == sorted(mounts)
    for kind, source, _, _ in mounts:
        if kind == "volume":
            assert (await fake.inspect_volume(source))["Name"] == source
    await sp.stop()


async def test_mounts(make_spawner, fake, tmp_path):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    sp = make_spawner(
        "a.b",
        mounts=[
            {"type": "volume", "source": "home-{username}", "target": "/home/{username}"},
            {"type": "bind", "source": str(host_dir), "target": "/shared", "read_only": True},
            {"type": "tmpfs", "target": "/scratch"},
        ],
    )
    await sp.start()
    info = await inspect(fake, sp)
    sent = {m["Target"]: m for m in info["HostConfig"]["Mounts"]}
    assert sent["/home/a-2eb"]["Source"] == "home-a-2eb"
    assert sent["/home/a-2eb"]["Type"] == "volume"
    assert sent["/shared"]["ReadOnly"] is True
    assert sent["/scratch"]["Type"] == "tmpfs"
    seen = {m["Destination"]: m for m in info["Mounts"]}
    assert seen["/home/a-2eb"]["Name"] == "home-a-2eb" and seen["/home/a-2eb"]["RW"]
    assert seen["/shared"]["Source"] == str(host_dir) and not seen["/shared"]["RW"]
    await sp.stop()


async def test_mounts_use_format_volume_name(make_spawner, fake):
    sp = make_spawner(
        "alice",
        mounts=[{"type": "volume", "source": "m-{username}", "target": "/m"}],
        format_volume_name=lambda template, sp: template.format(username=sp.user.name.upper()),
    )
    await sp.start()
    info = await inspect(fake, sp)
    assert [m["Name"] for m in info["Mounts"]] == ["m-ALICE"]
    await sp.stop()


# -- networking: network_name, use_internal_ip/hostname, host_ip, links, port, ip ------------------


async def test_bridge_publishes_the_port_on_host_ip(make_spawner, fake):
    sp = make_spawner("alice")
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    (binding,) = info["NetworkSettings"]["Ports"]["8888/tcp"]
    assert (ip, port) == (binding["HostIp"], int(binding["HostPort"]))
    assert ip == "127.0.0.1"
    assert info["HostConfig"]["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    await sp.stop()


async def test_network_name_joins_network_and_uses_internal_ip(make_spawner, fake):
    await fake.create_network("jhub-net")
    sp = skip_readiness_wait(make_spawner("alice", network_name="jhub-net"))
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    assert info["HostConfig"]["NetworkMode"] == "jhub-net"
    assert list(info["NetworkSettings"]["Networks"]) == ["jhub-net"]
    assert ip == info["NetworkSettings"]["Networks"]["jhub-net"]["IPAddress"]
    assert ip and port == 8888
    assert info["HostConfig"]["PortBindings"] is None  # the engine's null: nothing published
    assert fake.calls.count("port") == 0
    net = await fake.inspect_network("jhub-net")
    assert sp.object_id in net["Containers"]
    await sp.stop()


async def test_use_internal_ip_on_bridge(make_spawner, fake):
    sp = skip_readiness_wait(make_spawner("alice", use_internal_ip=True))
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    assert ip == info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert port == 8888
    assert info["HostConfig"]["PortBindings"] is None
    await sp.stop()


async def test_use_internal_ip_false_on_custom_network_publishes(make_spawner, fake):
    await fake.create_network("jhub-net")
    sp = make_spawner("alice", network_name="jhub-net", use_internal_ip=False)
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    (binding,) = info["NetworkSettings"]["Ports"]["8888/tcp"]
    assert (ip, port) == ("127.0.0.1", int(binding["HostPort"]))
    await sp.stop()


async def test_missing_network_is_a_clear_error(make_spawner, fake):
    sp = make_spawner("alice", network_name="no-such-net")
    with pytest.raises(Exception) as excinfo:
        await sp.start()
    assert "no-such-net" in excinfo.value.detail
    assert "no-such-net" in getattr(excinfo.value, "jupyterhub_message", "")
    assert await names(fake) == set()  # nothing left behind


async def test_use_internal_hostname(make_spawner, fake):
    await fake.create_network("jhub-net")
    sp = skip_readiness_wait(make_spawner("alice", network_name="jhub-net", use_internal_hostname=True))
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    assert ip == info["Config"]["Hostname"] == "jupyter-alice"
    assert port == 8888
    await sp.stop()


def test_host_ip_from_tcp_docker_host(make_spawner, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.11.12.13:2376")
    assert make_spawner("alice").host_ip == "10.11.12.13"


def test_host_ip_ignores_unix_docker_host(make_spawner, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    assert make_spawner("alice").host_ip == "127.0.0.1"


@pytest.mark.parametrize("source", ["trait", "docker_host"])
async def test_host_ip_effect(make_spawner, fake, monkeypatch, source):
    if source == "trait":
        sp = make_spawner("alice", host_ip="127.0.0.2")
    else:
        monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.2:2375")
        sp = make_spawner("alice")
    skip_readiness_wait(sp)  # the fake listens on 127.0.0.1 only (known difference 2)
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    assert info["HostConfig"]["PortBindings"]["8888/tcp"][0]["HostIp"] == "127.0.0.2"
    (binding,) = info["NetworkSettings"]["Ports"]["8888/tcp"]
    assert (ip, port) == ("127.0.0.2", int(binding["HostPort"]))
    await sp.stop()


async def test_links(make_spawner, fake):
    db = await fake.create_container({"name": "db", "image": DEFAULT_IMAGE, "command": ["sleep", "600"]})
    await fake.start_container(db)
    sp = make_spawner("alice", links={"db": "database"})
    await sp.start()
    assert last_create_spec(fake)["host_config"]["links"] == {"db": "database"}
    links = (await inspect(fake, sp))["HostConfig"]["Links"]
    assert links and any("db" in link and "database" in link for link in links)
    await sp.stop()


async def test_port(make_spawner, fake):
    sp = make_spawner("alice", port=9999)
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    assert "9999/tcp" in info["Config"]["ExposedPorts"]
    assert "8888/tcp" not in info["Config"]["ExposedPorts"]
    (binding,) = info["NetworkSettings"]["Ports"]["9999/tcp"]
    assert port == int(binding["HostPort"])
    assert env_of(info)["JUPYTERHUB_SERVICE_URL"].startswith("http://0.0.0.0:9999/")
    await sp.stop()


async def test_default_port_exposed(make_spawner, fake):
    sp = make_spawner("alice")
    await sp.start()
    info = await inspect(fake, sp)
    assert list(info["Config"]["ExposedPorts"]) == ["8888/tcp"]
    await sp.stop()


@pytest.mark.parametrize("ip", [None, "127.0.0.1"])
async def test_ip_in_service_url(make_spawner, fake, ip):
    sp = make_spawner("alice") if ip is None else make_spawner("alice", ip=ip)
    await sp.start()
    url = env_of(await inspect(fake, sp))["JUPYTERHUB_SERVICE_URL"]
    assert url.startswith(f"http://{ip or '0.0.0.0'}:8888/")
    await sp.stop()


# -- limits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "traits, memory, quota",
    [
        ({}, 0, 0),
        ({"mem_limit": "1G"}, 1024**3, 0),
        ({"mem_limit": 512 * 1024**2}, 512 * 1024**2, 0),
        ({"cpu_limit": 1.5}, 0, 150_000),
        ({"mem_limit": lambda sp: "2G", "cpu_limit": lambda sp: 0.5}, 2 * 1024**3, 50_000),
    ],
    ids=["none", "mem-str", "mem-int", "cpu", "callables"],
)
async def test_limits(make_spawner, fake, traits, memory, quota):
    sp = make_spawner("alice", **traits)
    await sp.start()
    hc = (await inspect(fake, sp))["HostConfig"]
    assert hc["Memory"] == memory
    assert hc["CpuQuota"] == quota
    if quota:
        assert hc["CpuPeriod"] == 100_000
    await sp.stop()


async def test_limit_callables_are_evaluated_at_every_start(make_spawner, fake):
    limits = {"mem": "1G", "cpu": 1.0}
    sp = make_spawner("alice", mem_limit=lambda s: limits["mem"], cpu_limit=lambda s: limits["cpu"])
    await sp.start()
    first = await inspect(fake, sp)
    assert first["HostConfig"]["Memory"] == 1024**3
    assert first["HostConfig"]["CpuQuota"] == 100_000
    await sp.stop()
    limits.update(mem="3G", cpu=2.0)
    await sp.start()
    second = await inspect(fake, sp)
    assert second["HostConfig"]["Memory"] == 3 * 1024**3
    assert second["HostConfig"]["CpuQuota"] == 200_000
    await sp.stop()


async def test_limit_env_is_the_evaluated_value(make_spawner, fake):
    """MEM_LIMIT / CPU_LIMIT (set by the base Spawner for the user's tools) carry the
    value, as with a static limit, never the callable's repr."""
    sp = make_spawner("alice", mem_limit=lambda s: "1G", cpu_limit=lambda s: 2.0)
    await sp.start()
    env = env_of(await inspect(fake, sp))
    assert env["MEM_LIMIT"] == str(1024**3)
    assert env["CPU_LIMIT"] == "2.0"
    await sp.stop()


# -- extra_create_kwargs / extra_host_config -----------------------------------------------------------


async def _async_create_kwargs(sp):
    return {"working_dir": "/home/{username}", "labels": {"team": "t-{username}"}}


@pytest.mark.parametrize(
    "extra",
    [
        {"working_dir": "/home/{username}", "labels": {"team": "t-{username}"}},
        lambda sp: {"working_dir": "/home/{username}", "labels": {"team": "t-{username}"}},
        _async_create_kwargs,
    ],
    ids=["dict", "callable", "async"],
)
async def test_extra_create_kwargs(make_spawner, fake, extra):
    sp = make_spawner("a.b", extra_create_kwargs=extra)
    await sp.start()
    info = await inspect(fake, sp)
    assert info["Config"]["WorkingDir"] == "/home/a-2eb"
    labels = info["Config"]["Labels"]
    assert labels["team"] == "t-a-2eb"  # added ...
    assert labels["org.jupyterhub.user"] == "a.b"  # ... while the owner labels stay
    assert labels["org.jupyterhub.managed-by"] == "dockerspawner"
    await sp.stop()


async def test_extra_create_kwargs_replaces_a_scalar(make_spawner, fake):
    sp = make_spawner("alice", extra_create_kwargs={"command": ["/srv/bin/jupyterhub-singleuser", "--x"]})
    await sp.start()
    info = await inspect(fake, sp)
    assert [info["Path"], *info["Args"]] == ["/srv/bin/jupyterhub-singleuser", "--x"]
    await sp.stop()


async def _async_host_config(sp):
    return {"device_requests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}


@pytest.mark.parametrize(
    "extra",
    [
        {"device_requests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]},
        lambda sp: {"device_requests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]},
        _async_host_config,
    ],
    ids=["dict", "callable", "async"],
)
async def test_extra_host_config_adds_while_port_bindings_stay(make_spawner, fake, extra):
    sp = make_spawner("alice", extra_host_config=extra)
    fake.device_drivers.update(NVIDIA)  # a GPU host: without a driver the engine refuses the start
    ip, port = await sp.start()
    hc = (await inspect(fake, sp))["HostConfig"]
    assert hc["DeviceRequests"][0]["Driver"] == "nvidia"
    assert hc["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert ip == "127.0.0.1" and port
    await sp.stop()


async def test_extra_host_config_port_bindings_replace(make_spawner, fake):
    sp = make_spawner("alice", extra_host_config={"port_bindings": {8888: ("0.0.0.0",)}})
    ip, port = await sp.start()
    hc = (await inspect(fake, sp))["HostConfig"]
    assert hc["PortBindings"] == {"8888/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]}
    assert ip == "127.0.0.1"  # a wildcard binding is reached on host_ip
    await sp.stop()


async def test_extra_host_config_templates(make_spawner, fake):
    sp = make_spawner(
        "a.b",
        extra_host_config=lambda sp: {"binds": {"/srv/{raw_username}": {"bind": "/x/{username}", "mode": "ro"}}},
    )
    await sp.start()
    hc = (await inspect(fake, sp))["HostConfig"]
    assert hc["Binds"] == ["/srv/a.b:/x/a-2eb:ro"]
    await sp.stop()


async def test_extra_kwargs_leave_non_template_braces_alone(make_spawner, fake):
    """Established: a string that is not a valid template stays as written (e.g. JSON
    in an env value or a label); only {username}-style fields are filled in."""
    sp = make_spawner(
        "alice",
        extra_create_kwargs={"environment": {"APP_CONFIG": '{"user": "{raw_username}x", "n": 1}'},
                             "labels": {"who": "{username}"}},
        extra_host_config={"log_config": {"type": "json-file", "config": {"labels": '{"k": "v"}'}}},
    )
    await sp.start()
    info = await inspect(fake, sp)
    assert env_of(info)["APP_CONFIG"] == '{"user": "{raw_username}x", "n": 1}'
    assert info["Config"]["Labels"]["who"] == "alice"
    assert info["HostConfig"]["LogConfig"]["Config"] == {"labels": '{"k": "v"}'}
    await sp.stop()


# -- remove, post_start_cmd ---------------------------------------------------------------------------------


async def test_remove_false_keeps_the_container(make_spawner, fake):
    sp = make_spawner("alice")
    await sp.start()
    cid = sp.object_id
    await sp.stop()
    info = await fake.inspect_container(cid)
    assert info["State"]["Status"] == "exited"
    assert fake.calls.count("remove_container") == 0


async def test_remove_true_removes_the_container(make_spawner, fake):
    sp = make_spawner("alice", remove=True)
    await sp.start()
    await sp.stop()
    assert await names(fake) == set()
    assert await sp.poll() == 0


async def test_post_start_cmd_runs_and_is_logged(make_spawner, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.script_exec("jupyter-alice", "touch-marker", exit_code=0, stdout="marker-made\n")
    sp = make_spawner("alice", post_start_cmd="touch-marker")
    await sp.start()
    execs = fake.calls.filter("exec_run")
    assert len(execs) == 1
    assert execs[0].args["ref"] == sp.object_id
    assert "marker-made" in " ".join(messages(caplog, "touch-marker"))
    # it ran after the start
    methods = fake.calls.methods()
    assert methods.index("start_container") < methods.index("exec_run")
    await sp.stop()


async def test_post_start_cmd_failure_is_logged_and_the_server_starts(make_spawner, fake, caplog):
    # 14's behaviour: an upgrade must not break every spawn of a hub whose command returns 1
    caplog.set_level(logging.INFO)
    sp = make_spawner("alice", post_start_cmd=["sh", "-c", "echo broken-setup >&2; exit 7"])
    await sp.start()
    assert await sp.poll() is None
    logged = " ".join(messages(caplog, "post_start"))
    assert "broken-setup" in logged and "exited 7" in logged and "post_start_cmd_must_succeed" in logged
    await sp.stop()


async def test_post_start_cmd_failure_fails_the_start_when_asked(make_spawner, fake, caplog):
    caplog.set_level(logging.INFO)
    sp = make_spawner(
        "alice", post_start_cmd=["sh", "-c", "echo broken-setup >&2; exit 7"], post_start_cmd_must_succeed=True
    )
    with pytest.raises(Exception) as excinfo:
        await sp.start()
    assert "7" in getattr(excinfo.value, "jupyterhub_message", str(excinfo.value))
    assert "exit" in excinfo.value.detail.lower() and "7" in excinfo.value.detail
    assert await names(fake) == set()  # the container was removed
    assert "broken-setup" in " ".join(messages(caplog, "post_start_cmd"))


# -- environment -------------------------------------------------------------------------------------------


async def test_environment_static_and_callable(make_spawner, fake):
    sp = make_spawner(
        "alice",
        environment={"STATIC": "value", "WHO": lambda s: f"user-{s.user.name}"},
    )
    await sp.start()
    env = env_of(await inspect(fake, sp))
    assert env["STATIC"] == "value"
    assert env["WHO"] == "user-alice"
    await sp.stop()


@pytest.mark.parametrize("keep", [False, True])
async def test_env_keep(make_spawner, fake, monkeypatch, keep):
    monkeypatch.setenv("DS_TEST_HOST_VAR", "from-host")
    sp = make_spawner("alice", env_keep=["DS_TEST_HOST_VAR"]) if keep else make_spawner("alice")
    await sp.start()
    env = env_of(await inspect(fake, sp))
    assert env.get("DS_TEST_HOST_VAR") == ("from-host" if keep else None)
    await sp.stop()


@pytest.mark.parametrize("debug", [False, True])
async def test_debug(make_spawner, fake, debug):
    sp = make_spawner("alice", debug=debug)
    await sp.start()
    info = await inspect(fake, sp)
    flagged = env_of(info).get("JUPYTERHUB_DEBUG") == "1" or "--debug" in info["Args"]
    assert flagged is debug
    await sp.stop()


# -- docker-py backend settings (no engine contacted) ------------------------------------------------------


async def test_docker_engine_gets_client_settings(make_spawner, monkeypatch, shared_engines):
    from dockerspawner.engine.dockerpy import DockerPyEngine

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    sp = make_spawner(
        "alice",
        engine="docker",
        client_kwargs={"base_url": "tcp://127.0.0.1:1", "timeout": 7},
        tls_config={"verify": False},
    )
    engine = sp.docker_engine
    assert isinstance(engine, DockerPyEngine)
    kwargs = engine.client_kwargs()
    assert kwargs["base_url"] == "tcp://127.0.0.1:1"
    assert kwargs["timeout"] == 7
    assert kwargs["tls"] is not None and kwargs["tls"].verify is False
    assert engine.base_url.endswith("127.0.0.1:1")


@pytest.mark.parametrize("use_env", [True, False])
async def test_use_docker_client_env(make_spawner, monkeypatch, shared_engines, use_env):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    sp = make_spawner("alice", engine="docker", use_docker_client_env=use_env)
    kwargs = sp.docker_engine.client_kwargs()
    assert (kwargs.get("base_url") == "tcp://127.0.0.1:2") is use_env


async def test_default_engine_is_docker_py_and_does_no_io(make_spawner, shared_engines):
    from dockerspawner.engine.dockerpy import DockerPyEngine

    sp = make_spawner("alice", engine="docker")
    assert isinstance(sp.docker_engine, DockerPyEngine)


async def test_engine_settings_set_after_use_take_effect(make_spawner, monkeypatch, shared_engines):
    """The spawner remembers its engine; setting a client trait, or forgetting the
    shared engines, makes it find the engine again."""
    from dockerspawner.engine.connect import forget_engines

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    sp = make_spawner("alice", engine="docker", client_kwargs={"base_url": "tcp://127.0.0.1:1"})
    first = sp.docker_engine
    assert sp.docker_engine is first
    sp.client_kwargs = {"base_url": "tcp://127.0.0.1:3"}
    second = sp.docker_engine
    assert second is not first and second.client_kwargs()["base_url"] == "tcp://127.0.0.1:3"
    forget_engines()
    assert sp.docker_engine is not second
    sp.engine = "fake"
    assert type(sp.docker_engine).__name__ == "FakeDocker"


# -- deprecated aliases ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, value",
    [
        ("container_image", "image", IMAGE_A),
        ("container_port", "port", 9000),
        ("container_ip", "host_ip", "127.0.0.3"),
        ("container_prefix", "prefix", "hub"),
        ("container_name_template", "name_template", "x-{username}"),
        ("remove_containers", "remove", True),
        ("image_whitelist", "allowed_images", [IMAGE_A, IMAGE_B]),
    ],
)
@pytest.mark.parametrize("via", ["kwarg", "config"])
def test_deprecated_alias(make_spawner, caplog, old, new, value, via):
    caplog.set_level(logging.WARNING)
    DockerSpawner._warned.clear()
    if via == "config":
        cfg = Config()
        setattr(cfg.DockerSpawner, old, value)
        sp = make_spawner("alice", config=cfg)
    else:
        sp = make_spawner("alice", **{old: value})
    assert getattr(sp, new) == value
    warned = [m for m in messages(caplog, old) if "deprecated" in m.lower()]
    # 14's words: "<cls>.<old> is deprecated in DockerSpawner <version>, use <cls>.<new> instead"
    assert warned and f"DockerSpawner.{old} is deprecated in DockerSpawner" in warned[0]
    assert f"use DockerSpawner.{new} instead" in warned[0]


def test_deprecation_warned_once_per_class_not_per_user(make_spawner, caplog):
    caplog.set_level(logging.WARNING)
    DockerSpawner._warned.clear()
    for name in ("alice", "bob", "carol"):
        make_spawner(name, container_prefix="hub")
    assert len([m for m in messages(caplog, "container_prefix") if "deprecated" in m]) == 1


def test_same_value_under_both_names_is_not_warned(make_spawner, caplog):
    caplog.set_level(logging.WARNING)
    DockerSpawner._warned.clear()
    make_spawner("alice", prefix="hub", container_prefix="hub")
    assert not messages(caplog, "deprecated")


@pytest.mark.parametrize("old", ["tls", "tls_verify", "tls_ca", "tls_cert", "tls_key", "tls_assert_hostname"])
def test_old_tls_traits_are_accepted_and_say_use_tls_config(make_spawner, caplog, old):
    caplog.set_level(logging.WARNING)
    DockerSpawner._warned.clear()
    make_spawner("alice", **{old: True})
    assert any("tls_config" in m for m in messages(caplog, old))


def test_hub_ip_connect_is_accepted_and_points_to_hub_connect_ip(make_spawner, caplog):
    caplog.set_level(logging.WARNING)
    DockerSpawner._warned.clear()
    make_spawner("alice", hub_ip_connect="10.1.2.3")
    assert any("JupyterHub.hub_connect_ip" in m for m in messages(caplog, "hub_ip_connect"))


async def test_deprecated_alias_effect(make_spawner, fake, caplog):
    sp = make_spawner("alice", container_image=IMAGE_A, container_prefix="old", remove_containers=True)
    await sp.start()
    info = await inspect(fake, sp)
    assert info["Config"]["Image"] == IMAGE_A
    assert info["Name"] == "/old-alice"
    await sp.stop()
    assert await names(fake) == set()


# -- template namespace --------------------------------------------------------------------------------------


def test_template_namespace(make_spawner):
    from jupyterhub import orm
    from jupyterhub.objects import Server

    sp = make_spawner("a.b@example.com", "Lab", prefix="pre", image=IMAGE_A)
    sp.server = Server(
        orm_server=orm.Server(proto="http", ip="", port=0, base_url="/user/a.b@example.com/Lab/", cookie_name="c")
    )
    ns = sp.template_namespace()
    assert ns["username"] == "a-2eb-40example-2ecom"
    assert ns["safe_username"] == "a-2eb-40example-2ecom"
    assert ns["raw_username"] == "a.b@example.com"
    assert ns["servername"] == "lab"
    assert ns["raw_servername"] == "Lab"
    assert ns["imagename"] == "example.org-lab-python-1"
    assert ns["prefix"] == "pre"
    assert ns["base_url"] == "/user/a.b@example.com/Lab/"  # from the base Spawner


def test_template_namespace_default_server(make_spawner):
    ns = make_spawner("alice").template_namespace()
    assert ns["servername"] == "" and ns["raw_servername"] == ""
    assert ns["imagename"] == DEFAULT_IMAGE.replace("/", "-").replace(":", "-")


# -- saved state ------------------------------------------------------------------------------------------------


async def test_get_state(make_spawner, fake):
    sp = make_spawner("alice")
    assert "object_id" not in sp.get_state()
    await sp.start()
    (listed,) = await fake.list_containers(all=True)
    state = sp.get_state()
    assert state["object_id"] == listed["Id"]
    assert state["object_name"] == listed["Names"][0].lstrip("/")
    assert set(state) <= {"object_id", "object_name"}
    await sp.stop()


def test_load_state_legacy_container_id(make_spawner):
    sp = make_spawner("alice")
    sp.load_state({"container_id": "abc123"})
    assert sp.object_id == "abc123"
    assert sp.get_state()["object_id"] == "abc123"


def test_load_state(make_spawner):
    sp = make_spawner("alice")
    sp.load_state({"object_id": "abc", "object_name": "jupyter-alice-xdeadbeef"})
    assert (sp.object_id, sp.object_name) == ("abc", "jupyter-alice-xdeadbeef")


async def test_clear_state_keeps_name_clears_id(make_spawner, fake):
    sp = make_spawner("alice")
    await sp.start()
    name = sp.object_name
    await sp.stop()
    sp.clear_state()
    assert sp.object_id == ""
    assert sp.object_name == name
    assert sp.get_state() == {}  # as 14: the established name needs no state


async def test_saved_state_finds_the_container_again(make_spawner, fake):
    first = make_spawner("alice")
    await first.start()
    cid = first.object_id
    await first.stop()
    state = first.get_state()
    # a hub restart: a new spawner object gets the saved state
    again = make_spawner("alice")
    again.load_state(state)
    await again.start()
    assert again.object_id == cid
    assert fake.calls.count("create_container") == 1
    await again.stop()


async def test_legacy_state_finds_the_container_again(make_spawner, fake):
    first = make_spawner("alice")
    await first.start()
    cid = first.object_id
    await first.stop()
    again = make_spawner("alice")
    again.load_state({"container_id": cid})
    assert await again.poll() is not None  # exited, but known
    await again.start()
    assert again.object_id == cid
    await again.stop()


# -- get_ip_and_port as an override point -------------------------------------------------------------------


class _LocalhostSpawner(DockerSpawner):
    async def get_ip_and_port(self):
        _, port = await super().get_ip_and_port()
        return "localhost", port


async def test_get_ip_and_port_override(make_spawner, fake):
    sp = make_spawner("alice", spawner_class=_LocalhostSpawner)
    ip, port = await sp.start()
    info = await inspect(fake, sp)
    assert ip == "localhost"
    assert port == int(info["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"])
    await sp.stop()


# -- engine selection ------------------------------------------------------------------------------------------


async def test_engine_fake_is_shared(make_spawner, shared_engines):
    from fakedocker import FakeDocker

    one = make_spawner("alice", engine="fake")
    two = make_spawner("bob", engine="fake")
    assert isinstance(one.docker_engine, FakeDocker)
    assert one.docker_engine is two.docker_engine
    one.docker_engine.add_image(DEFAULT_IMAGE, config=dict(SINGLEUSER))
    await one.start()
    # what one spawner made, the other's engine sees
    info = await two.docker_engine.inspect_container("jupyter-alice")
    assert info["Id"] == one.object_id
    await one.stop()


async def test_engine_object_injection(make_spawner, fake_docker_factory):
    mine = fake_docker_factory()
    mine.add_image(DEFAULT_IMAGE, config=dict(SINGLEUSER))
    sp = make_spawner("alice", engine=mine)
    assert sp.docker_engine is mine
    await sp.start()
    assert mine.calls.count("create_container") == 1
    await sp.stop()


async def test_unknown_engine_names_the_choices(make_spawner):
    sp = make_spawner("alice", engine="containerd-nope")
    with pytest.raises(ValueError) as excinfo:
        _ = sp.docker_engine
    text = str(excinfo.value)
    assert "containerd-nope" in text and "docker" in text and "fake" in text
