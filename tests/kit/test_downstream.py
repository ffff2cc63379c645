"""The downstream example (tests/downstream), built and installed as a
downstream developer would have it: wheels of this project and of the example,
installed non-editable into a throwaway venv, then its own test suite run
with -W error in pytest-asyncio's unconfigured, strict and auto modes, on each
pytest-asyncio of asyncio-matrix.txt.

The venv reuses this environment's other packages (symlinked, so nothing is
downloaded); pytest and pytest-asyncio of a pinned column come from the
wheelhouse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from unavailable import unavailable

REPO = Path(__file__).resolve().parents[2]
DOWNSTREAM = REPO / "tests" / "downstream"
MATRIX = Path(__file__).with_name("asyncio-matrix.txt")
WHEELHOUSE = Path(os.environ.get("DOCKERSPAWNER_TEST_WHEELHOUSE") or REPO / ".ci" / "wheels")
#: How many tests the example has; a run that collects fewer hides a broken fixture.
EXAMPLE_TESTS = 8
MODES = {"unconfigured": [], "strict": ["-o", "asyncio_mode=strict"], "auto": ["-o", "asyncio_mode=auto"]}


def columns() -> dict[str, list[str]]:
    out = {}
    for line in MATRIX.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins = [] if line == "installed" else line.split()
            out[pins[0].split("==")[1] if pins else "installed"] = pins
    return out


COLUMNS = columns()
CASES = [
    pytest.param(col, mode, id=f"{col}-{mode}")
    for col in COLUMNS
    for mode in MODES
    # unconfigured is strict on every version: once is enough off the installed one
    if col == "installed" or mode != "unconfigured"
]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd[:6])}... failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _shadowed(name: str, pinned: bool) -> bool:
    """Entries of this environment the throwaway venv must not see."""
    if name.startswith(("__editable__", "dockerspawner", "hubhooks")) or name == "__pycache__":
        return True
    pytest_names = name in ("pytest", "_pytest", "py.py", "pytest_asyncio") or re.match(
        r"^pytest(_asyncio)?-[0-9].*\.dist-info$", name
    )
    return bool(pinned and pytest_names)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> list[Path]:
    """Wheels of this project and of the example, built from copies of their
    sources (a build in the worktree would leave build/ and *.egg-info)."""
    root = tmp_path_factory.mktemp("kit-wheels")
    src = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("dockerspawner", "fakedocker"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(DOWNSTREAM, root / "example", ignore=ignore)
    out = root / "dist"
    env = dict(os.environ)
    try:
        import wheel  # noqa: F401 - setuptools < 70.1 builds wheels with it
    except ImportError:
        # a pure-python wheel is importable as it is: no install needed
        found = sorted(WHEELHOUSE.glob("wheel-*.whl"))
        if not found:
            pytest.fail(f"building a wheel needs the `wheel` package: pip install wheel, or put its wheel in {WHEELHOUSE}")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(found[-1]), env.get("PYTHONPATH")]))
    for project in (src, root / "example"):
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
             "-w", str(out), str(project)], env=env)
    return sorted(out.glob("*.whl"))


_venvs: dict[str, Path] = {}
_venv_locks = {column: threading.Lock() for column in COLUMNS}


def make_venv(column: str, wheels: list[Path], root: Path) -> Path:
    """A venv with this project and the example installed from wheels (once a column)."""
    with _venv_locks[column]:
        return _make_venv(column, wheels, root)


def _make_venv(column: str, wheels: list[Path], root: Path) -> Path:
    if column in _venvs:
        return _venvs[column]
    pins = COLUMNS[column]
    extra = []
    for pin in pins:
        name, version = pin.split("==")
        found = sorted(WHEELHOUSE.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if not found:
            reason = f"no wheel for {pin} in {WHEELHOUSE}: pip download --no-deps -d {WHEELHOUSE} {pin}"
            unavailable(f"the wheel of {pin}", reason)
        extra.append(found[0])
    venv = root / f"venv-{column}"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    target = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for entry in here.iterdir():
        if not _shadowed(entry.name, pinned=bool(pins)):
            (target / entry.name).symlink_to(entry)
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         *map(str, wheels), *map(str, extra)])
    _venvs[column] = venv
    return venv


@pytest.fixture(scope="module")
def example_runs(wheels, tmp_path_factory):
    """Every fake-engine case of the matrix, started at once, three at a time:
    each is a subprocess that mostly waits on its hub and proxy, so running
    them side by side takes a fraction of running them one after another."""
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="downstream-example")
    runs: dict[tuple[str, str], Future] = {}
    for case in CASES:
        column, mode = case.values
        where = tmp_path_factory.mktemp(f"example-{column}-{mode}")
        runs[(column, mode)] = pool.submit(run_example, column, mode, [], wheels, tmp_path_factory, where)
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("column, mode", CASES)
def test_downstream_example_passes(column, mode, example_runs):
    example_runs[(column, mode)].result(timeout=900)


@pytest.mark.real_engine
@pytest.mark.parametrize("real_engine", ["docker"], indirect=True)
@pytest.mark.parametrize("mode", ["strict"])  # auto: every fake column runs it
def test_downstream_example_passes_on_the_real_engine(mode, real_engine, wheels, tmp_path_factory, tmp_path):
    """The same suite with --fakedocker-engine=docker: what passed on the fake
    passes for real (its fault tests ask for fake_docker and stay on the fake)."""
    run_example("installed", mode, ["--fakedocker-engine=docker"], wheels, tmp_path_factory, tmp_path)


def run_example(column, mode, options, wheels, tmp_path_factory, tmp_path) -> None:
    venv = make_venv(column, wheels, tmp_path_factory.getbasetemp())
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    where = run(
        [python, "-c", "import dockerspawner, fakedocker, hubhooks, pytest_asyncio;"
         "print(dockerspawner.__file__, fakedocker.__file__, hubhooks.__file__); print(pytest_asyncio.__version__)"],
        env=env, cwd=tmp_path,
    ).stdout.split("\n")
    assert all(path.startswith(str(venv)) for path in where[0].split()), where[0]
    assert column == "installed" or where[1] == column
    data = run(
        [python, "-c", "from importlib.resources import files; import fakedocker;"
         "print(all(files(p).joinpath(f).is_file() for p, f in [('fakedocker', 'README.md'),"
         "('fakedocker', 'REFERENCE.md'), ('fakedocker', 'py.typed'), ('dockerspawner', 'py.typed')]),"
         "fakedocker.__doc__.startswith('# fakedocker'))"],
        env=env, cwd=tmp_path,
    ).stdout.split()
    assert data == ["True", "True"], "the wheel lacks fakedocker's guide, reference or py.typed"

    project = tmp_path / "project"
    shutil.copytree(DOWNSTREAM / "tests", project / "tests")
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", *MODES[mode], *options, "tests"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    # the last line of pytest's own (the proxy may write after it)
    summary = ([line for line in proc.stdout.splitlines() if re.match(r"^\d+ (passed|failed)", line)] or [""])[-1]
    log = tmp_path / "pytest.log"
    log.write_text(proc.stdout + proc.stderr)
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("E ", "FAILED", "ERROR"))]
    assert proc.returncode == 0, f"whole output in {log}\n" + "\n".join(failures[:40]) + proc.stderr[-2000:]
    assert re.fullmatch(rf"{EXAMPLE_TESTS} passed in [0-9.]+s( \(.*\))?", summary), summary
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before, "the suite left files behind"
