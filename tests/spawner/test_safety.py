"""Safe by default (issue 4, point 6), at the spawner: no hub process.

- user_options are validated before anything reaches the engine: unknown keys
  and wrong types are an HTTP 400 with a message; allowed_images is enforced.
- No user or server name can make a bind or volume path leave the directory its
  template names ("..", "/", "%2e%2e", unicode look-alikes; {raw_username},
  {raw_servername} and the default escaped {username}).
- The hub's own secrets never reach a container's env.
- Logs never contain the server's API token (spawn, stop, reuse, failing
  post_start_cmd).

The same rules through a real hub (REST API, form, admin) are in
tests/hub/test_hub_errors.py. Runs on fakedocker only.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import secrets
import string

import pytest
from jupyterhub.spawner import Spawner
from tornado import web

from dockerspawner import DockerSpawner

IMAGE = "quay.io/jupyterhub/singleuser:test"
IMAGE2 = "quay.io/jupyterhub/singleuser:other"
SINGLEUSER = {"Cmd": ["jupyterhub-singleuser"]}


def env_of(info: dict) -> dict[str, str]:
    return dict(line.split("=", 1) for line in info["Config"]["Env"] or [])


# -- user_options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"imgae": IMAGE2}, "imgae"),
        ({"image": IMAGE2, "privileged": True}, "privileged"),
        ({"extra_host_config": {"privileged": True}}, "extra_host_config"),
        ({"volumes": {"/": "/host"}}, "volumes"),
        ({"image": 42}, "string"),
        ({"image": [IMAGE2]}, "string"),
        ({"image": {"name": IMAGE2}}, "string"),
    ],
    ids=["typo", "extra-key", "host-config", "volumes", "int", "list", "dict"],
)
async def test_bad_user_options_are_400_before_the_engine(fake, make_spawner, options, needle):
    sp = make_spawner("alice", image=IMAGE, allowed_images=[IMAGE, IMAGE2])
    sp.user_options = options
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(sp.start(), 10)
    assert info.value.status_code == 400
    assert needle in info.value.log_message, info.value.log_message
    assert [c.method for c in fake.calls if c.method in ("pull_image", "create_container", "start_container")] == []


@pytest.mark.parametrize(
    "allowed, requested",
    [
        ([], IMAGE2),
        ([IMAGE], IMAGE2),
        ({"default": IMAGE}, IMAGE2),
        ({"default": IMAGE}, "Default"),
        (lambda sp: [IMAGE], IMAGE2),
        ([IMAGE], IMAGE + " "),
        ([IMAGE], IMAGE.upper()),
    ],
    ids=["empty", "list", "dict-value", "dict-key-case", "callable", "trailing-space", "case"],
)
async def test_image_not_allowed_is_400(fake, make_spawner, allowed, requested):
    sp = make_spawner("alice", image=IMAGE, allowed_images=allowed)
    sp.user_options = {"image": requested}
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(sp.start(), 10)
    assert info.value.status_code == 400
    assert "not allowed" in info.value.log_message
    assert fake.calls.count("create_container") == 0 and fake.calls.count("pull_image") == 0


async def test_image_not_allowed_also_refused_for_move_certs(fake, make_spawner, tmp_path):
    """internal_ssl: move_certs runs before start and makes a helper container of
    the image; a disallowed image must not get that far either."""
    (tmp_path / "c").write_text("x")
    sp = make_spawner("alice", image=IMAGE, allowed_images=[IMAGE])
    sp.user_options = {"image": IMAGE2}
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(sp.move_certs({"cafile": str(tmp_path / "c")}), 10)
    assert info.value.status_code == 400
    assert fake.calls.count("create_container") == 0


@pytest.mark.skipif(
    "apply_user_options" not in Spawner.class_trait_names(), reason="JupyterHub < 5.3 has no apply_user_options"
)
async def test_known_options_of_apply_user_options_are_accepted(fake, make_spawner):
    sp = make_spawner("alice", image=IMAGE, apply_user_options={"mem": "mem_limit"})
    sp.user_options = {"mem": "1G"}
    sp.mem_limit = "1G"  # what the hub's apply step does with it
    await sp.start()
    await sp.stop()
    sp2 = make_spawner("alice", image=IMAGE, apply_user_options={"mem": "mem_limit"})
    sp2.user_options = {"mem": "1G", "cpu": 8}
    with pytest.raises(web.HTTPError) as info:
        await sp2.start()
    assert info.value.status_code == 400 and "cpu" in info.value.log_message


# -- names never escape volume templates -----------------------------------------------------------

HOSTILE = [
    "..",
    ".",
    "/",
    "../etc",
    "a/../../etc",
    "x/../bob",
    "bob/.",
    "bob/sub",
    "%2e%2e",
    "%2e%2e%2fetc",
    "..%2f..%2fetc",
    "\u2024\u2024",  # ONE DOT LEADER x2
    "\uff0e\uff0e",  # FULLWIDTH FULL STOP x2
    "\u2215etc",  # DIVISION SLASH
    "\uff0fetc",  # FULLWIDTH SOLIDUS
    "..\\..\\etc",
    "a\x00b",
]

TEMPLATES = [
    # (kind, trait, template)
    ("host", "volumes", "/srv/users/{raw_username}"),
    ("host", "volumes", "/srv/users/{raw_username}/work"),
    ("host", "volumes", "/srv/users/home-{raw_username}"),
    ("host", "volumes", "/srv/users/{username}"),
    ("host", "volumes", "/srv/servers/{raw_username}/{raw_servername}"),
    ("host", "read_only_volumes", "/srv/shared/{raw_username}"),
    ("volume", "volumes", "jupyterhub-user-{raw_username}"),
    ("volume", "volumes", "{raw_username}"),
    ("volume", "volumes", "jupyterhub-user-{username}"),
    ("target", "volumes", "/home/{raw_username}/work"),
    ("mount-source", "mounts", "data-{raw_username}"),
    ("mount-target", "mounts", "/mnt/{raw_username}"),
]


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def assert_confined(template: str, rendered: str) -> None:
    """``rendered`` names exactly one entry where ``template`` points: the same
    directory, the same depth, no '.'/'..' component, no NUL."""
    if not template.startswith("/"):
        assert "/" not in rendered and rendered not in (".", ".."), f"volume name {rendered!r} from {template!r}"
        return
    assert "\x00" not in rendered, f"{rendered!r} has a NUL"
    comps = _components(rendered)
    assert not {".", ".."} & set(comps), f"{rendered!r} (from {template!r}) has a relative component"
    placeholder = template.format_map({"raw_username": "U", "raw_servername": "S", "username": "U", "servername": "S"})
    assert len(comps) == len(_components(placeholder)), (
        f"{rendered!r} (from {template!r}) is not one entry where the template points"
    )
    static = template[: template.index("{")]
    base = static if static.endswith("/") else posixpath.dirname(static) + "/"
    assert posixpath.normpath(rendered).startswith(base), f"{rendered!r} leaves {base!r}"


def rendered_paths(kind: str, spec: dict, template: str) -> list[str]:
    hc = spec.get("host_config") or {}
    if kind in ("host", "volume"):
        return [src for src in (hc.get("binds") or {}) if not src.startswith("/srv/fixed")]
    if kind == "target":
        return [b["bind"] for b in (hc.get("binds") or {}).values()]
    mounts = hc.get("mounts") or []
    key = "Source" if kind == "mount-source" else "Target"
    return [m[key] for m in mounts]


def traits_for(kind: str, trait: str, template: str) -> dict:
    if kind == "target":
        return {"volumes": {"/srv/fixed": template}}
    if trait == "mounts":
        if kind == "mount-source":
            return {"mounts": [{"type": "volume", "source": template, "target": "/data"}]}
        return {"mounts": [{"type": "volume", "source": "fixed-vol", "target": template}]}
    return {trait: {template: "/home/jovyan/work"}}


@pytest.mark.parametrize("kind, trait, template", TEMPLATES, ids=[t[2] + "|" + t[1] for t in TEMPLATES])
@pytest.mark.parametrize("hostile", HOSTILE, ids=[repr(h) for h in HOSTILE])
async def test_name_never_leaves_the_template_directory(fake, make_spawner, kind, trait, template, hostile):
    username, servername = ("alice", hostile) if "servername" in template else (hostile, "")
    if "servername" in template and "raw_username" in template:
        username = "alice"
    sp = make_spawner(username, servername, image=IMAGE, **traits_for(kind, trait, template))
    # the container name must not be what fails here
    sp.object_name = "jupyter-test-" + secrets.token_hex(4)
    try:
        await asyncio.wait_for(sp.start(), 15)
    except Exception as e:  # noqa: BLE001 - a refusal is fine, if it is a clean one
        message = getattr(e, "jupyterhub_message", None) or getattr(e, "log_message", None)
        assert message, f"refused without a message for the user: {e!r}"
        assert "Traceback" not in message
    creates = fake.calls.filter("create_container")
    for call in creates:
        for path in rendered_paths(kind, call.args["spec"], template):
            assert_confined(template, path)
    if "{username}" in template:
        # escaping makes every name safe: the escaped template must just work
        assert creates, "a name was refused although the template escapes it"


async def test_escaped_username_does_not_collide_with_lookalikes(fake, make_spawner):
    """The escaped {username} gives distinct paths for names that only look alike."""
    template = {"/srv/users/{username}": "/home/jovyan/work"}
    seen = {}
    for name in ["..", "\u2024\u2024", "\uff0e\uff0e", "%2e%2e", "-2e-2e"]:
        sp = make_spawner(name, image=IMAGE, volumes=template)
        sp.object_name = "jupyter-t-" + secrets.token_hex(4)
        await sp.start()
        (src,) = fake.calls.filter("create_container")[-1].args["spec"]["host_config"]["binds"]
        assert src not in seen, f"{name!r} and {seen.get(src)!r} share {src}"
        seen[src] = name
        await sp.stop()


# -- the hub's secrets stay in the hub --------------------------------------------------------------

HUB_SECRETS = {
    "JUPYTERHUB_CRYPT_KEY": "crypt-" + secrets.token_hex(16),
    "CONFIGPROXY_AUTH_TOKEN": "proxy-" + secrets.token_hex(16),
    "JPY_COOKIE_SECRET": "cookie-" + secrets.token_hex(16),
    "JUPYTERHUB_COOKIE_SECRET": "cookie2-" + secrets.token_hex(16),
    "JUPYTERHUB_API_TOKEN": "hubtoken-" + secrets.token_hex(16),
}


@pytest.mark.parametrize("traits", [{}, {"remove": True}, {"env_keep": ["PATH", "LANG"]}], ids=["default", "remove", "env_keep"])
async def test_hub_secrets_never_reach_the_container(fake, make_spawner, monkeypatch, traits):
    for key, value in HUB_SECRETS.items():
        monkeypatch.setenv(key, value)
    sp = make_spawner("alice", image=IMAGE, **traits)
    sp.api_token = "server-" + secrets.token_hex(8)
    await sp.start()
    info = await fake.inspect_container(sp.object_id)
    env = env_of(info)
    for key, value in HUB_SECRETS.items():
        if key == "JUPYTERHUB_API_TOKEN":
            # the server gets its own token, never the hub's
            assert env.get(key) == sp.api_token
        else:
            assert key not in env, f"{key} of the hub reached the container"
        assert value not in repr(info), f"the value of {key} reached the container"
    await sp.stop()


# -- the API token never reaches the logs -------------------------------------------------------


def token_leaks(caplog, token: str) -> list[str]:
    leaks = []
    for r in caplog.records:
        text = r.getMessage()
        if r.exc_info and r.exc_info[1] is not None:
            text += " " + str(r.exc_info[1])
        if token in text:
            leaks.append(f"{r.name}:{r.levelname}: {text[:300]}")
    return leaks


def new_token() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(40))


async def test_token_not_logged_through_spawn_stop_reuse(fake, make_spawner, caplog):
    caplog.set_level(logging.DEBUG)
    token = new_token()
    sp = make_spawner("alice", image=IMAGE, post_start_cmd=["sh", "-c", "echo started"])
    sp.api_token = token
    await sp.start()
    await sp.poll()
    await sp.stop()
    again = make_spawner("alice", image=IMAGE, post_start_cmd=["sh", "-c", "echo started"])
    again.load_state(sp.get_state())
    again.api_token = new_token()
    await again.start()  # reuse: the container keeps (and the hub is told) the first token
    assert again.api_token == token
    await again.stop()
    assert token_leaks(caplog, token) == []


@pytest.mark.parametrize(
    "cmd",
    [
        ["sh", "-c", "env; exit 3"],
        ["sh", "-c", "env >&2; exit 3"],
        ["sh", "-c", "echo token is $JUPYTERHUB_API_TOKEN; echo $JUPYTERHUB_API_TOKEN >&2; exit 1"],
        ["sh", "-c", "env"],
    ],
    ids=["env-stdout", "env-stderr", "echo", "env-ok"],
)
async def test_token_not_logged_by_post_start_cmd(fake, make_spawner, caplog, cmd):
    """A post_start_cmd whose output has the token (a debugging `env`, `set -x`)
    must not copy it into the hub's log or the user's error message."""
    caplog.set_level(logging.DEBUG)
    token = new_token()
    sp = make_spawner("alice", image=IMAGE, post_start_cmd=cmd)
    sp.api_token = token
    try:
        await asyncio.wait_for(sp.start(), 15)
    except Exception as e:  # noqa: BLE001
        assert token not in getattr(e, "detail", str(e)), "the admin detail of the error has the token"
        assert token not in (getattr(e, "jupyterhub_message", "") or ""), "the user's message has the token"
    else:
        await sp.stop()
    assert token_leaks(caplog, token) == []


async def test_token_not_logged_when_container_exits(fake, make_spawner, caplog):
    """A server that prints its environment and dies: the log tail shown to the
    user and the admin must not carry the token."""
    caplog.set_level(logging.DEBUG)
    token = new_token()
    fake.faults.exit_after_start("jupyter-alice", exit_code=1, stderr=[f"JUPYTERHUB_API_TOKEN={token}", "crash"])
    sp = make_spawner("alice", image=IMAGE, cmd=["sleep", "600"])
    sp.api_token = token
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(sp.start(), 15)
    assert token not in info.value.detail and token not in str(info.value)
    assert token not in (getattr(info.value, "jupyterhub_message", "") or "")
    assert token_leaks(caplog, token) == []


def test_secrets_and_token_are_not_in_the_spawner_repr(make_spawner):
    sp = make_spawner("alice", image=IMAGE)
    sp.api_token = token = new_token()
    assert token not in repr(sp) and token not in str(sp.get_state())
    assert isinstance(sp, DockerSpawner)
