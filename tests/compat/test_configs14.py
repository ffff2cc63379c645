"""Configs of existing deployments get the containers dockerspawner 14 made for them.

Each case was a defect found by running 14-era configs; each runs on fakedocker
and on the real engine.
"""

from __future__ import annotations


import pytest
from tornado import web

from dockerspawner import naming

from contract.helpers import HTTPD_CMD, eventually, same_image_ref, stored_binds

pytestmark = pytest.mark.engine


async def test_imagename_in_name_template_makes_a_valid_name(spawner_factory, engine, test_image):
    spawner = spawner_factory(name_template="{prefix}-{imagename}-{username}")
    await spawner.start()
    expected = f"{spawner_factory.prefix}-{test_image.replace('/', '-').replace(':', '-')}-alice"
    assert spawner.object_name == expected
    assert (await engine.inspect_container(spawner.object_id))["Name"] == "/" + expected
    await spawner.stop()


@pytest.mark.parametrize(
    "period, limit, quota",
    [(50_000, 1.5, 75_000), (None, 1.5, 150_000), (200_000, 0.5, 100_000)],
)
async def test_cpu_quota_follows_the_admins_cpu_period(spawner_factory, engine, period, limit, quota):
    extra = {"init": True}
    if period:
        extra["cpu_period"] = period
    spawner = spawner_factory(cpu_limit=limit, extra_host_config=extra)
    await spawner.start()
    host = (await engine.inspect_container(spawner.object_id))["HostConfig"]
    assert (host["CpuPeriod"], host["CpuQuota"]) == (period or 100_000, quota)
    await spawner.stop()


async def test_remove_true_server_that_dies_leaves_no_container(spawner_factory, engine):
    spawner = spawner_factory(remove=True)
    await spawner.start()
    cid = spawner.object_id
    await engine.kill_container(cid, signal="KILL")  # killed from outside; the hub only polls

    async def gone() -> bool:
        try:
            await engine.inspect_container(cid)
        except Exception:  # noqa: BLE001 - NotFound: removed
            return True
        return False

    await eventually(gone, timeout=8)
    status = await spawner.poll()
    assert status is not None and status != 0 and "ExitCode=137" in str(status)


async def test_remove_true_poll_removes_what_the_watcher_missed(spawner_factory, engine):
    spawner = spawner_factory(remove=True)
    await spawner.start()
    cid = spawner.object_id
    from dockerspawner import exits

    exits.watcher(spawner.docker_engine).unwatch(cid)  # as if the hub was down when it died
    await engine.kill_container(cid, signal="KILL")
    await eventually(lambda: _exited(engine, cid), timeout=8)
    status = await spawner.poll()
    assert "ExitCode=137" in str(status)
    assert not await engine.list_containers(all=True, filters={"id": cid})


async def _exited(engine, cid: str) -> bool:
    return not (await engine.inspect_container(cid))["State"]["Running"]


async def test_server_dying_during_start_with_remove_reports_exit_code_and_log(spawner_factory, engine):
    spawner = spawner_factory(remove=True, cmd=["sh", "-c", "echo about-to-fail >&2; exit 3"])
    with pytest.raises(Exception) as info:
        await spawner.start()
    message = info.value.jupyterhub_message
    assert "exit code 3" in message and "about-to-fail" in message
    assert not await engine.list_containers(all=True, filters={"label": [f"{naming.LABEL_USER}=alice"]})


async def test_servername_in_host_path_works_for_the_default_server(spawner_factory, engine, tmp_path):
    template = str(tmp_path / "homes" / "{username}" / "{servername}")
    spawner = spawner_factory(volumes={template: "/home/work"})
    await spawner.start()
    binds = (await engine.inspect_container(spawner.object_id))["HostConfig"]["Binds"]
    assert binds == stored_binds(engine.engine_kind, [f"{tmp_path}/homes/alice/:/home/work:rw"])
    await spawner.stop()
    named = spawner_factory(server="lab", volumes={template: "/home/work"})
    await named.start()
    binds = (await engine.inspect_container(named.object_id))["HostConfig"]["Binds"]
    assert binds == stored_binds(engine.engine_kind, [f"{tmp_path}/homes/alice/lab:/home/work:rw"])
    await named.stop()


async def _unlabelled(engine, name: str, test_image: str, labels: dict, *, running: bool) -> str:
    """A container under a server's name that no dockerspawner labelled (14's, or a person's)."""
    cid = await engine.create_container(
        {"image": test_image, "name": name, "command": list(HTTPD_CMD), "labels": dict(labels),
         "host_config": {"init": True}}
    )
    if running:
        await engine.start_container(cid)
    return cid


async def test_running_unlabelled_container_is_never_touched(spawner_factory, engine, test_image, caplog):
    caplog.set_level("WARNING")
    spawner = spawner_factory()
    name = spawner.object_name
    stranger = await _unlabelled(engine, name, test_image, spawner_factory.labels, running=True)
    await spawner.start()
    assert spawner.object_id != stranger
    assert spawner.object_name == naming.distinct_name(name, naming.owner_key("alice", ""))
    assert (await engine.inspect_container(stranger))["State"]["Running"]
    assert any(name in r.getMessage() and "leaving it alone" in r.getMessage() for r in caplog.records)
    await spawner.stop()
    assert (await engine.inspect_container(stranger))["State"]["Running"]  # stop did not touch it either
    # the derived name is remembered, so a restarted hub finds the same container
    state = spawner.get_state()
    again = spawner_factory(name="alice")
    again.load_state(state)
    assert again.object_name == spawner.object_name


async def test_stopped_unlabelled_leftover_is_replaced_as_14_did(spawner_factory, engine, test_image):
    spawner = spawner_factory()
    leftover = await _unlabelled(engine, spawner.object_name, test_image, spawner_factory.labels, running=False)
    await spawner.start()
    assert spawner.object_id != leftover
    assert spawner.object_name == spawner_factory.prefix + "-alice"
    assert not await engine.list_containers(all=True, filters={"id": leftover})
    await spawner.stop()


async def test_running_unlabelled_server_named_in_state_is_adopted(spawner_factory, engine, test_image):
    """A server 14 started before the upgrade: its saved state names it."""
    spawner = spawner_factory()
    cid = await _unlabelled(engine, spawner.object_name, test_image, spawner_factory.labels, running=True)
    spawner.load_state({"object_id": cid, "object_name": spawner.object_name})
    assert await spawner.poll() is None
    await spawner.stop()
    assert not (await engine.inspect_container(cid))["State"]["Running"]


async def test_remove_true_stop_leaves_empty_state(spawner_factory):
    spawner = spawner_factory(remove=True)
    await spawner.start()
    assert set(spawner.get_state()) == {"object_id", "object_name"}
    await spawner.stop()
    assert spawner.get_state() == {}


async def test_docker_method_calls_work_on_every_engine(spawner_factory, engine, test_image):
    """The APIClient methods subclasses use, through 14's docker(), on both engines."""
    spawner = spawner_factory(post_start_cmd=["true"])
    await spawner.start()
    cid = spawner.object_id
    assert (await spawner.docker("inspect_container", cid))["Id"] == cid
    assert (await spawner.docker("inspect_image", test_image))["Id"].startswith("sha256:")
    listed = await spawner.docker("containers", filters={"id": cid})
    assert [c["Id"] for c in listed] == [cid]
    tags = [t for i in await spawner.docker("images", name=test_image) for t in i.get("RepoTags") or []]
    assert any(same_image_ref(t, test_image) for t in tags), tags
    binding = await spawner.docker("port", cid, 8888)
    assert binding and binding[0]["HostPort"]
    exec_id = await spawner.docker("exec_create", cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    out, err = await spawner.docker("exec_start", exec_id=exec_id, demux=True)
    assert (out, err) == (b"out\n", b"err\n")
    assert (await spawner.docker("exec_inspect", exec_id))["ExitCode"] == 3
    volumes = await spawner.docker("volumes", filters={"label": "org.jupyterhub.test.none=1"})
    assert volumes["Volumes"] in ([], None)
    await spawner.docker("stop", cid, timeout=1)
    await spawner.docker("remove_container", cid, v=True)
    assert not await spawner.docker("containers", all=True, filters={"id": cid})


async def test_docker_unknown_method_names_itself(spawner_factory, engine):
    spawner = spawner_factory()
    if getattr(engine, "engine_kind", "") != "fake":
        assert hasattr(spawner.client, "inspect_container")  # the real docker.APIClient
        return
    with pytest.raises(NotImplementedError, match="'attach_socket'.*supports.*inspect_container"):
        await spawner.docker("attach_socket", "x")
    with pytest.raises(AttributeError, match="engine='docker'"):
        _ = spawner.client


# -- bad input at the edges: a clear 4xx, nothing created ----------------------------------


@pytest.mark.parametrize(
    "image",
    ["../x", "a/../b", "with space:1", "Upper", "repo:", "a" * 300, "x/y:tag:again"],
)
async def test_invalid_image_reference_is_400_before_any_engine_call(spawner_factory, engine, image):
    spawner = spawner_factory(allowed_images="*")
    spawner.user_options = {"image": image}
    calls = getattr(engine, "calls", None)
    before = len(calls) if calls is not None else 0
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == 400
    assert "not a valid image name" in info.value.log_message
    assert len(info.value.log_message) < 400
    if calls is not None:
        assert len(calls) == before


async def test_megabyte_option_value_gets_a_short_400_naming_the_field(spawner_factory):
    spawner = spawner_factory(allowed_images="*")
    spawner.user_options = {"image": "x" * 1_000_000}
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == 400
    assert "'image'" in info.value.log_message and len(info.value.log_message) < 300
    spawner.user_options = {"y" * 1_000_000: 1}
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == 400 and len(info.value.log_message) < 300


async def test_server_name_too_long_for_a_host_path_is_400_naming_the_limit(spawner_factory, engine, tmp_path):
    server = "ü" * 200
    spawner = spawner_factory(server=server, volumes={str(tmp_path / "{username}" / "{servername}"): "/home/work"})
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == 400
    assert "255" in info.value.log_message and len(info.value.log_message) < 600
    assert not await engine.list_containers(all=True, filters={"label": [f"{naming.LABEL_SERVER}={server}"]})


# -- the options form -----------------------------------------------------------------------


def test_default_options_form_is_a_select_for_several_images(spawner_factory):
    spawner = spawner_factory(allowed_images=["a/one:1", "b/two:2"], image="b/two:2")
    form = spawner._default_options_form()  # what a 14 subclass calling it gets: a string
    assert isinstance(form, str)
    assert '<select class="form-control" name="image"' in form
    assert form.count("<option") == 2 and '<option value="b/two:2" selected>' in form
    assert spawner_factory(allowed_images=["a/one:1"])._default_options_form() == ""
    assert spawner_factory()._default_options_form() == ""


async def test_options_form_rendered_by_the_hub_is_a_select(spawner_factory):
    spawner = spawner_factory(allowed_images={"One": "a/one:1", "Two": "b/two:2"})
    form = await spawner.get_options_form()
    assert "<select" in form and '<option value="One"' in form and '<option value="Two"' in form


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    import dockerspawner

    assert dockerspawner.__version__ == version("dockerspawner")


# -- switches back to 14's behaviour --------------------------------------------------------


async def test_changed_spec_replaces_the_container_unless_switched_back(spawner_factory, engine):
    first = spawner_factory(environment={"GENERATION": "1"})
    await first.start()
    old = first.object_id
    await first.stop()
    again = spawner_factory(environment={"GENERATION": "2"})
    await again.start()
    replaced = again.object_id
    assert replaced != old  # replaced: the container runs with the new env
    await again.stop()
    kept = spawner_factory(environment={"GENERATION": "3"}, replace_changed_containers=False)
    await kept.start()
    assert kept.object_id == replaced  # 14: started as it is
    await kept.stop()


async def test_unknown_user_options_are_ignored_when_switched_back(spawner_factory):
    strict = spawner_factory()
    strict.user_options = {"colour": "blue"}
    with pytest.raises(web.HTTPError) as info:
        await strict.start()
    assert info.value.status_code == 400 and "'colour'" in info.value.log_message
    lenient = spawner_factory(name="bob", refuse_unknown_user_options=False)
    lenient.user_options = {"colour": "blue"}
    await lenient.start()
    await lenient.stop()


async def test_internal_hostname_too_long_for_the_kernel_is_a_clear_error(spawner_factory, engine):
    spawner = spawner_factory(name="a" * 70, use_internal_hostname=True)
    with pytest.raises(Exception) as info:
        await spawner.start()
    assert "too long to be used as a host name" in info.value.jupyterhub_message
    assert "escape='safe'" in info.value.detail
    assert not await engine.list_containers(all=True, filters={"label": [f"{naming.LABEL_USER}={'a' * 70}"]})
