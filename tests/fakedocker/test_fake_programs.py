"""The program simulator: busybox applets, sh -c scripts, exec, files, stop behaviour."""

from __future__ import annotations

import time

import pytest
from fk_helpers import make_tar

from dockerspawner.engine import Conflict
from fakedocker.programs import Word, tokenize
from fk_helpers import HTTPD_PAGE


async def _exec(fake, cid, cmd, **kw):
    r = await fake.exec_run(cid, cmd, **kw)
    return r.exit_code, r.stdout.decode(), r.stderr.decode()


@pytest.mark.parametrize(
    "script, code, out, err",
    [
        ("echo out1; echo err1 >&2; echo out2; exit 3", 3, "out1\nout2\n", "err1\n"),
        ("true && echo yes || echo no", 0, "yes\n", ""),
        ("false && echo yes || echo no", 0, "no\n", ""),
        ("echo 'a;b' \"c  d\"", 0, "a;b c  d\n", ""),
        ("X=1; export Y=2; echo $X ${Y} '$X'", 0, "1 2 $X\n", ""),
        ("cat /nope 2>/dev/null; echo $?", 0, "1\n", ""),
        ("echo hi > /tmp/f; echo there >> /tmp/f; cat /tmp/f", 0, "hi\nthere\n", ""),
        ("echo to-out 2>&1; echo x 1>&2", 0, "to-out\n", "x\n"),
        ("cd /var/www && pwd && cat index.html", 0, "/var/www\n" + HTTPD_PAGE.decode(), ""),
        ("nosuchcmd", 127, "", "sh: nosuchcmd: not found\n"),
        ("exec echo replaced; echo never", 0, "replaced\n", ""),
        ("test -f /etc/passwd && [ -d /tmp ] && [ 2 -lt 3 ]", 0, "", ""),
        ("printf '%s-%s\\n' a b", 0, "a-b\n", ""),
        ("echo one\necho two # a comment", 0, "one\ntwo\n", ""),
    ],
)
async def test_sh_scripts_in_exec(fake, run, script, code, out, err):
    cid = await run()
    assert await _exec(fake, cid, ["sh", "-c", script]) == (code, out, err)


async def test_exec_user_workdir_environment(fake, run):
    cid = await run(environment={"FROM_SPEC": "s"})
    assert await _exec(fake, cid, ["id", "-u"], user="nobody") == (0, "65534\n", "")
    assert await _exec(fake, cid, ["id", "-un"], user="1000") == (0, "jovyan\n", "")
    assert await _exec(fake, cid, ["pwd"], workdir="/tmp") == (0, "/tmp\n", "")
    code, out, _ = await _exec(
        fake, cid, "sh -c 'echo $FROM_SPEC $EXTRA $HOME'", environment={"EXTRA": "e"}, user="jovyan"
    )
    assert (code, out) == (0, "s e /home/jovyan\n")


async def test_unknown_exec_command_is_126_like_the_engine(fake, run):
    cid = await run()
    code, out, _ = await _exec(fake, cid, ["nonexist-cmd"])
    assert code == 126
    assert 'exec: "nonexist-cmd": executable file not found in $PATH' in out


async def test_scripted_exec_wins_over_the_simulator(fake, run):
    cid = await run(name="scripted")
    fake.script_exec("scr*", "pip install *", exit_code=0, stdout="Successfully installed\n", times=1)
    fake.script_exec("scr*", ["id", "-u"], exit_code=0, stdout="4242\n")
    assert await _exec(fake, cid, ["pip", "install", "numpy"]) == (0, "Successfully installed\n", "")
    assert (await _exec(fake, cid, ["pip", "install", "numpy"]))[0] == 126
    assert await _exec(fake, cid, ["id", "-u"]) == (0, "4242\n", "")


async def test_exec_needs_a_running_container(fake, run):
    cid = await run(start=False)
    with pytest.raises(Conflict, match="is not running"):
        await fake.exec_run(cid, ["true"])


async def test_put_archive_files_are_readable_and_volumes_keep_them(fake, run):
    a = await run(host_config={"binds": {"fk-data": {"bind": "/data", "mode": "rw"}}, "init": True})
    await fake.put_archive(a, "/data", make_tar({"note.txt": b"kept\n", "sub/deep.txt": b"deep\n"}))
    assert await _exec(fake, a, ["cat", "/data/note.txt", "/data/sub/deep.txt"]) == (0, "kept\ndeep\n", "")
    await fake.remove_container(a, force=True)
    b = await run(host_config={"binds": ["fk-data:/mnt"], "init": True})
    assert await _exec(fake, b, ["cat", "/mnt/note.txt"]) == (0, "kept\n", "")
    assert (await fake.inspect_volume("fk-data"))["Name"] == "fk-data"


async def test_empty_volume_gets_the_image_content_at_its_mount_point(fake, run):
    cid = await run(
        host_config={"mounts": [{"Type": "volume", "Source": "fk-www", "Target": "/var/www"}], "init": True}
    )
    assert await _exec(fake, cid, ["cat", "/var/www/index.html"]) == (0, HTTPD_PAGE.decode(), "")


async def test_main_program_output_and_exit(fake, run):
    cid = await run(["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert await fake.wait_container(cid, timeout=5) == 5
    assert await fake.container_logs(cid) == "out\nerr\n"
    assert await fake.container_logs(cid, tail=1) == "err\n"
    assert await fake.container_logs(cid, stdout=False) == "err\n"


@pytest.mark.parametrize(
    "command, code, logs",
    [
        (["true"], 0, ""),
        (["false"], 1, ""),
        (["id", "-u"], 0, "0\n"),
        (["cat", "/nope"], 1, "cat: can't open '/nope': No such file or directory\n"),
        (["busybox", "echo", "via busybox"], 0, "via busybox\n"),
        (["httpd", "-p", "8080"], 0, ""),
    ],
)
async def test_short_programs_exit_like_busybox(fake, run, command, code, logs):
    cid = await run(command)
    assert await fake.wait_container(cid, timeout=5) == code
    assert await fake.container_logs(cid) == logs


async def test_sleep_as_pid1_ignores_sigterm_without_init(fake, run):
    cid = await run(["sleep", "300"])
    t0 = time.monotonic()
    await fake.stop_container(cid, timeout=0.3)
    assert time.monotonic() - t0 >= 0.3
    assert (await fake.inspect_container(cid))["State"]["ExitCode"] == 137


async def test_sleep_with_init_dies_on_sigterm(fake, run):
    cid = await run(["sleep", "300"], host_config={"init": True})
    t0 = time.monotonic()
    await fake.stop_container(cid, timeout=5)
    assert time.monotonic() - t0 < 0.2
    assert (await fake.inspect_container(cid))["State"]["ExitCode"] == 143


async def test_registered_program(fake, run):
    async def hello(proc):
        proc.write(f"hello {proc.argv[1]} as {proc.ids()[0]}\n")
        return 9

    fake.programs.register("hello", hello)
    cid = await run(["/usr/local/bin/hello", "world"], user="1000")
    assert await fake.wait_container(cid, timeout=5) == 9
    assert await fake.container_logs(cid) == "hello world as 1000\n"


def test_tokenizer_keeps_fd_redirects_apart_from_words():
    tokens = tokenize("echo 2 > f; echo a 2>&1")
    shown = [t if isinstance(t, str) else "".join(p for p, _ in t.parts) for t in tokens]
    assert shown == ["echo", "2", ">", "f", ";", "echo", "a", "2>&", "1"]
    assert all(isinstance(t, (str, Word)) for t in tokens)
