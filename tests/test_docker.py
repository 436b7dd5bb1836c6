"""The Dockerfile and docker-compose.yml, checked without a Docker daemon.

The tests read the real files. The Dockerfile's install step runs on a copy of the build context (the
files that .dockerignore leaves), mounted read-only as BuildKit mounts it, into a fresh venv; the
compose services' commands then run with that venv's ``pgqueue`` against a new database.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import site
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import psycopg
import pytest
import yaml
from conftest import ROOT, wait_for
from docker.utils import exclude_paths

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = dockerfile.parse_file(str(ROOT / "Dockerfile"))
# docker-compose.yml before the image existed: each service ran this on a read-only bind mount at /app.
OLD_INSTALL = "pip install -q /app"
LEFT_OUT = {".git", ".venv", ".venvs", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build"}

pytestmark = pytest.mark.nodb


def command_of(service: dict[str, Any], key: str = "command") -> list[str]:
    """A service's command as compose passes it: a list as it is, a string split like a shell would."""
    value = service.get(key) or []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


PGQUEUE_SERVICES = {name: s for name, s in SERVICES.items() if "pgqueue" in " ".join(command_of(s))}


def mount_flags(flags: tuple[str, ...]) -> list[dict[str, str]]:
    """The ``--mount=k=v,...`` flags of a RUN instruction as dicts (a bare key, such as ``rw``, maps to '')."""
    mounts = []
    for flag in flags:
        if flag.startswith("--mount="):
            pairs = (item.partition("=") for item in flag.removeprefix("--mount=").split(","))
            mounts.append({key: value for key, _, value in pairs})
    return mounts


def install_steps() -> list[tuple[str, str]]:
    """(mount target, shell command) of each RUN that mounts the build context: the image's install step."""
    steps = []
    for ins in DOCKERFILE:
        assert ins.cmd not in ("COPY", "ADD"), f"the test replays only RUN --mount=type=bind: {ins.original}"
        for mount in mount_flags(ins.flags) if ins.cmd == "RUN" else []:
            if mount.get("type") == "bind" and "from" not in mount:
                assert mount.get("source", mount.get("src", ".")) == ".", ins.original
                assert not {"rw", "readwrite"} & set(mount), f"the context is mounted writable: {ins.original}"
                steps.append((mount.get("target") or mount["dst"], " ".join(ins.value)))
    return steps


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in DOCKERFILE:
        if ins.cmd == "ENV":
            env.update(zip(ins.value[::2], ins.value[1::2], strict=True))
    return env


def copy_build_context(dest: Path) -> list[str]:
    """Copy the files Docker would send as the build context (.dockerignore honoured) into ``dest``."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    paths = sorted(exclude_paths(str(ROOT), patterns))
    for rel in paths:
        src = ROOT / rel
        if src.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return paths


def snapshot(tree: Path) -> dict[str, str]:
    """Every file and directory under ``tree`` with a hash of its content (directories: 'dir')."""
    return {str(p.relative_to(tree)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*"))}


def read_only_mounts_work(scratch: Path) -> bool:
    """Can this sandbox bind-mount a directory read-only in a private mount namespace (as root)?"""
    if shutil.which("unshare") is None:
        return False
    (scratch / "a").mkdir()
    (scratch / "b").mkdir()
    probe = 'mount --bind -o ro "$1" "$2" && ! touch "$2/probe" 2>/dev/null'
    result = subprocess.run(["unshare", "--mount", "sh", "-c", probe, "sh", scratch / "a", scratch / "b"],
                            capture_output=True, timeout=30)
    return result.returncode == 0 and not (scratch / "a" / "probe").exists()


def run_on_read_only(context: Path, mountpoint: Path, command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a mount namespace where ``mountpoint`` is a read-only bind mount of ``context``."""
    script = 'mount --bind -o ro "$1" "$2" && exec sh -c "$3"'
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", context, mountpoint, command],
                          capture_output=True, text=True, **kwargs)


def make_venv(venv: Path) -> None:
    """A venv that sees the project venv's packages (pgqueue's dependencies, pip, setuptools) but not its
    pgqueue: a .pth line puts that site-packages on sys.path without running its own .pth files, so the
    editable install's import hook stays out. (``--system-site-packages`` would give the base Python's
    packages, not the project venv's.) ``pip`` runs the project venv's pip in this venv; it sees the editable
    pgqueue there and leaves it alone ("Not uninstalling pgqueue ..., outside environment")."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    purelib = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    Path(purelib, "_project_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = venv / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\nexec "{venv}/bin/python" -m pip "$@"\n')
    pip.chmod(0o755)


@dataclass
class Image:
    """The Dockerfile's install step replayed into ``venv``."""

    venv: Path
    home: Path
    context: Path
    read_only: bool
    results: list[subprocess.CompletedProcess[str]]
    before: dict[str, str]
    after: dict[str, str]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment the image gives a process, with ``extra`` on top (a clean one: no PYTHONPATH)."""
        return {"PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.home),
                "LANG": "C.UTF-8", **dockerfile_env(), **extra}


def replay_install(tmp: Path, read_only: bool) -> Image:
    context, venv, home, work = tmp / "context", tmp / "venv", tmp / "home", tmp / "tmp"
    for folder in (context, home, work, tmp / "mnt"):
        folder.mkdir()
    copy_build_context(context)
    make_venv(venv)
    image = Image(venv, home, context, read_only, [], snapshot(context), {})
    # Offline, no dependencies (the project venv has them) and no build isolation (which downloads the
    # build backend): pip still builds the wheel from the copy. PIP_NO_BUILD_ISOLATION=0 is pip's spelling
    # of --no-build-isolation. PIP_CONFIG_FILE=/dev/null: the image has no pip.conf either.
    env = image.env(TMPDIR=str(work), PIP_NO_DEPS="1", PIP_NO_BUILD_ISOLATION="0", PIP_NO_INDEX="1",
                    PIP_CONFIG_FILE=os.devnull)
    for target, command in install_steps():
        if read_only:
            result = run_on_read_only(context, tmp / "mnt", command.replace(target, str(tmp / "mnt")),
                                      env=env, cwd=work, timeout=300)
        else:
            result = subprocess.run(["sh", "-c", command.replace(target, str(context))], capture_output=True,
                                    text=True, env=env, cwd=work, timeout=300)
        image.results.append(result)
    image.after = snapshot(context)
    return image


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> bool:
    return read_only_mounts_work(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, read_only: bool) -> Image:
    return replay_install(tmp_path_factory.mktemp("image"), read_only)


def assert_built(image: Image) -> None:
    for result in image.results:
        assert result.returncode == 0, f"the Dockerfile's install step failed:\n{result.stdout}\n{result.stderr}"


# --- structure ------------------------------------------------------------------------------------------


def test_pgqueue_services_share_the_image_built_from_the_dockerfile() -> None:
    assert set(PGQUEUE_SERVICES) == {"migrate", "worker", "demo"}
    images = set()
    for name, service in PGQUEUE_SERVICES.items():
        build = service.get("build")
        assert build is not None, f"{name} does not build the image"
        build = {"context": build} if isinstance(build, str) else build
        assert (ROOT / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == ROOT / "Dockerfile"
        images.add(service.get("image"))
    assert len(images) == 1 and None not in images, f"one image, named, shared by every service: {images}"
    assert SERVICES["postgres"]["image"].startswith("postgres:") and "healthcheck" in SERVICES["postgres"]


def test_no_service_mounts_the_source_or_installs_at_start() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/", "~")):
                path = (ROOT / os.path.expanduser(source)).resolve()
                assert not path.is_relative_to(ROOT), f"{name} mounts {source} from the source tree"
        start = " ".join(command_of(service) + command_of(service, "entrypoint"))
        assert not re.search(r"\b(pip3?|uv|apt-get|apk|poetry|install)\b", start), f"{name} installs: {start}"


def test_services_order_and_worker_stop_signal() -> None:
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("worker", "demo"):
        assert SERVICES[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert SERVICES["worker"]["stop_signal"] == "SIGTERM"


def test_dockerfile_base_user_and_install_step() -> None:
    assert [ins.value[0] for ins in DOCKERFILE if ins.cmd == "FROM"] == ["python:3.12-slim"]
    users = [ins.value[0] for ins in DOCKERFILE if ins.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"the image runs as root: USER {users}"
    # Compose's commands replace CMD; an ENTRYPOINT would take them as its arguments instead.
    assert not [ins for ins in DOCKERFILE if ins.cmd == "ENTRYPOINT"]
    steps = install_steps()
    assert steps and any("pip install" in command for _, command in steps), steps


def test_dockerignore_leaves_out_venvs_git_and_caches(tmp_path: Path) -> None:
    paths = copy_build_context(tmp_path)
    assert "pyproject.toml" in paths and "pgqueue/cli.py" in paths and "migrations/env.py" in paths
    for rel in paths:
        parts = set(Path(rel).parts)
        assert not parts & LEFT_OUT and not rel.endswith((".egg-info", ".pyc")), f"sent to Docker: {rel}"


# --- the install step --------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_install_step_builds_pgqueue_without_writing_to_the_context(image: Image) -> None:
    assert_built(image)
    assert image.after == image.before, "the install step wrote into the build context"
    where = subprocess.run([image.venv / "bin" / "python", "-c", "import pgqueue; print(pgqueue.__file__)"],
                           capture_output=True, text=True, env=image.env(), cwd=image.home, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(image.venv), where.stdout + where.stderr
    assert (image.venv / "bin" / "pgqueue").exists()


@pytest.mark.timeout(300)
def test_old_compose_install_fails_on_a_read_only_mount(image: Image) -> None:
    """The reported failure, reproduced by the same read-only mount the install step passes on."""
    if not image.read_only:
        pytest.skip("this sandbox cannot bind-mount read-only (unshare --mount); the tree was compared instead")
    mountpoint = image.context.parent / "mnt"
    result = run_on_read_only(image.context, mountpoint, OLD_INSTALL.replace("/app", str(mountpoint)),
                              env=image.env(PIP_NO_DEPS="1", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
                                            PIP_CONFIG_FILE=os.devnull), cwd=image.home, timeout=300)
    assert result.returncode != 0
    # pgqueue.egg-info (as reported) or build/, depending on the setuptools version and build isolation
    assert re.search(r"could not create '[^']+': Read-only file system", result.stdout + result.stderr), \
        result.stdout + result.stderr


# --- the services' commands -----------------------------------------------------------------------------


@pytest.fixture
def service_env(image: Image, new_database: Callable[[], str]) -> Callable[[str], dict[str, str]]:
    """A service's environment from the compose file, its database URL pointing at a new database."""
    assert_built(image)
    url = new_database()

    def env(name: str) -> dict[str, str]:
        compose_env = {k: str(v) for k, v in (PGQUEUE_SERVICES[name].get("environment") or {}).items()}
        assert "PGQUEUE_DATABASE_URL" in compose_env, f"{name} has no database URL"
        return image.env(**{**compose_env, "PGQUEUE_DATABASE_URL": url})

    return env


def run_service(image: Image, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command_of(PGQUEUE_SERVICES[name]), capture_output=True, text=True, env=env,
                          cwd=image.home, timeout=120)


@pytest.mark.timeout(300)
def test_migrate_then_worker_and_demo_then_info(image: Image, service_env: Callable[[str], dict[str, str]],
                                                 tmp_path: Path) -> None:
    migrate = run_service(image, "migrate", service_env("migrate"))
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert re.search(r"^pgqueue schema at revision \d+$", migrate.stdout, re.M), migrate.stdout
    with psycopg.connect(service_env("migrate")["PGQUEUE_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT to_regclass('pgqueue.jobs') IS NOT NULL").fetchone() == (True,)

    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(command_of(PGQUEUE_SERVICES["worker"]), stdout=log, stderr=subprocess.STDOUT,
                                  env=service_env("worker"), cwd=image.home, start_new_session=True)
    try:
        wait_for(lambda: "*** Listening on" in log_path.read_text() or worker.poll() is not None,
                 timeout=60, message="the worker to listen")
        assert worker.poll() is None, log_path.read_text()
        assert "*** Listening on high, default, low..." in log_path.read_text()

        demo = run_service(image, "demo", service_env("demo"))
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert re.search(r"^finished +slow_square\(5\) +-> 25$", demo.stdout, re.M), demo.stdout
        assert re.search(r"^failed +fail\(.*\) +-> ValueError: this job fails on purpose$", demo.stdout, re.M)
        # then `pgqueue info`: the demo queue, emptied, and the running worker with its queues
        assert re.search(r"^demo +\| 0$", demo.stdout, re.M), demo.stdout
        assert re.search(r"^\S+ idle: high, default, low$", demo.stdout, re.M), demo.stdout

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log_path.read_text()
        assert "SIGTERM received, warm shut down" in log_path.read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
