"""The compose deployment: docker-compose.yml (production topology) and docker-compose.dev.yml (one
Temporal dev-server container).

- `docker-compose config` (Debian's docker-compose 1.29, which validates and renders a file without a
  Docker engine) accepts both files with a .env made from .env.example, and refuses them while a
  required secret is missing. Skipped when docker-compose is not installed, unless CI is set.
- The rendered production file has the promised topology: services, two API processes and two
  workers, health checks on /readyz, stop grace periods above the shutdown grace, pinned images.
- Every command the compose files run with the batchway image exists in this checkout and parses, and
  the Dockerfile copies what those commands need (the image is built from this checkout).

Nothing here builds or runs an image: there is no Docker engine where the tests run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from cryptography.fernet import Fernet

from batchway.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PRODUCTION = REPO / "docker-compose.yml"
DEV = REPO / "docker-compose.dev.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

# What must come from .env: compose refuses to render while one is missing or empty (`${VAR:?...}`).
PRODUCTION_SECRETS = {
    "POSTGRES_PASSWORD",
    "TEMPORAL_DB_PASSWORD",
    "APP_DB_PASSWORD",
    "SECRET_KEY",
    "SESSION_SECRET",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
}
DEV_SECRETS = {"SECRET_KEY"}
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`..., but not the escaped `$${NAME}`.
VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?])[^}]*)?\}")


# --- helpers ------------------------------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        message = "docker-compose is not installed (apt-get install -y docker-compose)"
        if _in_ci():
            pytest.fail(f"{message}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(f"{message}; the compose files were not validated")
    return found


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def _filled_env_example() -> dict[str, str]:
    """.env.example with every empty value filled in, as an operator would."""
    values = _env_example()
    for name, value in values.items():
        if not value:
            values[name] = Fernet.generate_key().decode() if name == "SECRET_KEY" else f"test{name.lower()}1"
    return values


def _compose_config(docker_compose: str, compose_file: Path, env_file: Path) -> subprocess.CompletedProcess:
    # A bare environment: a variable set in the developer's shell must not stand in for one missing from
    # the .env file (compose prefers the process environment). --env-file replaces the project's .env.
    env = {"PATH": os.environ["PATH"], "HOME": str(env_file.parent)}
    return subprocess.run(
        [docker_compose, "--env-file", str(env_file), "-f", str(compose_file), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _render(docker_compose: str, compose_file: Path, env_file: Path) -> dict[str, Any]:
    result = _compose_config(docker_compose, compose_file, env_file)
    assert result.returncode == 0, f"docker-compose config {compose_file.name} failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def filled_env() -> dict[str, str]:
    return _filled_env_example()


@pytest.fixture(scope="module")
def production(docker_compose: str, filled_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env_file = _write_env(tmp_path_factory.mktemp("compose") / "test.env", filled_env)
    return _render(docker_compose, PRODUCTION, env_file)


@pytest.fixture(scope="module")
def dev(docker_compose: str, filled_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env_file = _write_env(tmp_path_factory.mktemp("compose") / "test.env", filled_env)
    return _render(docker_compose, DEV, env_file)


def _published(port: str | dict[str, Any]) -> tuple[str, int]:
    """(host address, host port) of a rendered port mapping, short ("[ip:]host:container") or long form."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), int(port["published"])
    parts = port.split("/")[0].split(":")
    return (parts[0] if len(parts) == 3 else ""), int(parts[-2])


def _seconds(duration: str) -> float:
    """A compose duration ("45s", "1m30s", "1h") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def _runs(service: dict[str, Any], *argv: str) -> bool:
    return list(service.get("command") or [])[: len(argv)] == list(argv)


def _readyz_port(service: dict[str, Any]) -> int:
    """The port of the /readyz URL that the service's health check fetches."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", test  # the slim image has python, not curl
    compile(test[3], "healthcheck", "exec")
    match = re.search(r"http://127\.0\.0\.1:(\d+)/readyz", test[3])
    assert match, test
    return int(match.group(1))


# --- .env.example and required secrets (no docker-compose needed) ------------------------------------


def test_env_example_names_every_variable_the_compose_files_use() -> None:
    example = _env_example()
    used = {name for path in (PRODUCTION, DEV) for name, _ in VARIABLE.findall(path.read_text())}
    assert used - example.keys() == set(), "variables missing from .env.example"
    assert example.keys() - used == set(), "variables in .env.example that no compose file uses"
    # batchway reads a .env in its working directory too: a line naming one of its settings would also
    # configure `batchway dev` and the test suite run from a checkout that holds the deployment's .env.
    settings = {f"BATCHWAY_{name.upper()}" for name in Settings.model_fields}
    assert example.keys() & settings == set()
    # Secrets are blank (to fill in); every other value is the default the compose files use.
    assert {name for name, value in example.items() if not value} == PRODUCTION_SECRETS | DEV_SECRETS


@pytest.mark.parametrize(("path", "secrets"), [(PRODUCTION, PRODUCTION_SECRETS), (DEV, DEV_SECRETS)])
def test_secrets_are_required_everywhere_they_are_used(path: Path, secrets: set[str]) -> None:
    uses = VARIABLE.findall(path.read_text())
    assert {name for name, operator in uses if operator == ":?"} == secrets
    for name, operator in uses:
        if name in secrets:
            assert operator == ":?", f"{path.name}: ${{{name}}} used without :? (a missing secret passes)"


# --- docker-compose config ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "secrets"), [(PRODUCTION, PRODUCTION_SECRETS), (DEV, DEV_SECRETS)])
def test_compose_refuses_to_render_without_the_secrets(
    docker_compose: str, filled_env: dict[str, str], tmp_path: Path, path: Path, secrets: set[str]
) -> None:
    without = {name: value for name, value in filled_env.items() if name not in secrets}
    result = _compose_config(docker_compose, path, _write_env(tmp_path / "partial.env", without))
    assert result.returncode != 0
    assert "set it in .env" in result.stderr


def test_production_services(production: dict[str, Any]) -> None:
    services = production["services"]
    assert set(services) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "minio",
        "minio-setup",
        "api",
        "api-2",
        "worker",
    }
    # Temporal: the real server on PostgreSQL, not the dev server; its schema job runs first.
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert "start-dev" not in str(temporal.get("command"))
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert temporal["depends_on"] == {"temporal-schema": {"condition": "service_completed_successfully"}}
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    # The namespace and search attributes: batchway's own command, in batchway's image, once the server
    # answers; the API and the workers wait for it (and for the bucket) to finish.
    setup = services["temporal-setup"]
    assert setup["image"] == services["api"]["image"] and "build" in setup
    assert setup["depends_on"] == {"temporal": {"condition": "service_healthy"}}
    for job in ("temporal-schema", "temporal-setup", "minio-setup"):
        assert services[job]["restart"] == "no", job
    for name in ("api", "api-2", "worker"):
        assert services[name]["depends_on"] == {
            "postgresql": {"condition": "service_healthy"},
            "temporal-setup": {"condition": "service_completed_successfully"},
            "minio-setup": {"condition": "service_completed_successfully"},
        }, name
    # One PostgreSQL; its init script (the three databases) is mounted from this checkout.
    init = [v for v in services["postgresql"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init and Path(init[0].split(":")[0]) == REPO / "deploy/postgres/init.sql"
    for name in ("postgresql", "temporal", "minio"):
        assert services[name]["healthcheck"]["test"], name


def test_production_api_and_workers(production: dict[str, Any], filled_env: dict[str, str]) -> None:
    services = production["services"]
    apis = {name: s for name, s in services.items() if _runs(s, "batchway", "api")}
    workers = {name: s for name, s in services.items() if _runs(s, "python", "worker.py")}
    assert sum(_replicas(s) for s in apis.values()) == 2
    assert sum(_replicas(s) for s in workers.values()) == 2
    assert _replicas(services["worker"]) == 2
    published = sorted(_published(port)[1] for s in apis.values() for port in s["ports"])
    assert published == [8000, 8001]  # one host port each, no load balancer needed

    for name, service in {**apis, **workers}.items():
        env = service["environment"]
        grace = float(env["BATCHWAY_SHUTDOWN_GRACE_SECONDS"])
        assert _seconds(service["stop_grace_period"]) > grace, name  # else SIGKILL cuts work short
        assert env["BATCHWAY_DATABASE_URL"] == (
            f"postgresql+psycopg://batchway:{filled_env['APP_DB_PASSWORD']}@postgresql:5432/batchway"
        )
        assert env["BATCHWAY_BLOB_URL"] == f"s3://{filled_env['S3_BUCKET']}/batchway"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] == filled_env["S3_ACCESS_KEY_ID"]
        assert env["AWS_SECRET_ACCESS_KEY"] == filled_env["S3_SECRET_ACCESS_KEY"]
        assert env["AWS_DEFAULT_REGION"]
        assert env["BATCHWAY_TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["BATCHWAY_TEMPORAL_NAMESPACE"] == filled_env["TEMPORAL_NAMESPACE"]
        assert service["restart"] == "unless-stopped", name

    for service in apis.values():
        assert _readyz_port(service) == 8000
        assert "BATCHWAY_SECRET_KEY" not in service["environment"]  # the API never needs the master key
    worker = services["worker"]["environment"]
    assert worker["BATCHWAY_SECRET_KEY"] == filled_env["SECRET_KEY"]
    assert worker["BATCHWAY_WORKER_HEALTH_HOST"] == "0.0.0.0"
    assert _readyz_port(services["worker"]) == int(worker["BATCHWAY_WORKER_HEALTH_PORT"])
    assert float(worker["BATCHWAY_FANOUT_WORKER_SHARE"]) * _replicas(services["worker"]) == 1.0


def test_production_exposes_admin_surfaces_on_loopback_only(production: dict[str, Any]) -> None:
    services = production["services"]
    assert "ports" not in services["postgresql"]
    for name in ("temporal", "temporal-ui", "minio"):
        for port in services[name]["ports"]:
            assert _published(port)[0] == "127.0.0.1", (name, port)


def test_images_are_pinned(
    production: dict[str, Any], dev: dict[str, Any], filled_env: dict[str, str]
) -> None:
    for config in (production, dev):
        for name, service in config["services"].items():
            image = service["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag and tag not in ("", "latest"), (name, image)
            if "build" not in service:  # third-party images: the tag comes from .env.example
                assert tag in filled_env.values(), (name, image)


def test_bind_mounts_exist_in_the_checkout(production: dict[str, Any], dev: dict[str, Any]) -> None:
    for config in (production, dev):
        for name, service in config["services"].items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("/"):
                    assert Path(source).exists() and Path(source).is_relative_to(REPO), (name, volume)


def test_dev_topology(dev: dict[str, Any], filled_env: dict[str, str]) -> None:
    from batchway.contracts import ALL_SEARCH_ATTRIBUTES

    services = dev["services"]
    assert set(services) == {"postgresql", "temporal", "api", "worker", "simulator"}
    temporal = services["temporal"]
    assert temporal["command"][:2] == ["server", "start-dev"]
    registered = {
        arg.split("=", 1)[1] for arg in temporal["command"] if arg.startswith("--search-attribute=")
    }
    assert registered == {f"{key.name}=Keyword" for key in ALL_SEARCH_ATTRIBUTES}
    worker = services["worker"]
    assert worker["environment"]["BATCHWAY_SECRET_KEY"] == filled_env["SECRET_KEY"]
    assert _replicas(worker) == 2
    grace = float(worker["environment"]["BATCHWAY_SHUTDOWN_GRACE_SECONDS"])
    assert _seconds(worker["stop_grace_period"]) > grace
    # A local blob folder: the API and the workers must share it.
    assert worker["volumes"] == services["api"]["volumes"]


# --- the image's entrypoints (no docker-compose needed) ----------------------------------------------


def _raw_services() -> Iterator[tuple[str, dict[str, Any]]]:
    """Services that run the batchway image, from the files as written (YAML anchors resolved)."""
    for path in (PRODUCTION, DEV):
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            if "build" in service:
                yield f"{path.name}:{name}", service


def _image_commands() -> list[tuple[str, list[str]]]:
    """Every command line the compose files run in the batchway image, with `sh -c` scripts opened."""
    commands = []
    for where, service in _raw_services():
        command = service.get("command")
        assert isinstance(command, list), f"{where}: use the exec form, so SIGTERM reaches the process"
        if command[:2] == ["sh", "-c"]:
            script = command[2].replace("$$", "$")  # compose's escape for a literal $
            check = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
            assert check.returncode == 0, f"{where}: {check.stderr}"
            for match in re.finditer(r"(?<![\w/.-])batchway(?:[ \t]+[^\s;&|]+)*", script):
                commands.append((where, shlex.split(match.group(0))))
        else:
            commands.append((where, command))
    return commands


def _parse_batchway(argv: list[str]) -> list[str]:
    """Resolves `batchway ...` to its command and parses the arguments exactly as given (an unknown
    option or a bad value raises a usage error), without running it. Returns the command path."""
    from batchway.cli import app

    # Typer's own (vendored) click: groups are recognised by what they do, not by class.
    command = typer.main.get_command(app)
    context = None
    path, args = ["batchway"], list(argv[1:])
    while hasattr(command, "get_command"):
        assert args, f"{' '.join(argv)}: no subcommand"
        context = command.make_context(path[-1], [], parent=context, resilient_parsing=True)
        sub = command.get_command(context, args[0])
        assert sub is not None, f"{' '.join(argv)}: no command {' '.join([*path, args[0]])}"
        command, path = sub, [*path, args.pop(0)]
    command.make_context(path[-1], args, parent=context)
    return path


def test_compose_runs_only_commands_the_image_has(tmp_path: Path) -> None:
    commands = _image_commands()
    programs = {tuple(argv[:1]) for _, argv in commands}
    assert programs <= {("batchway",), ("python",)}, programs
    # The commands the topology depends on are all there (the parse below proves they exist).
    lines = {" ".join(argv) for _, argv in commands}
    assert "batchway temporal setup --create-namespace" in lines
    assert "python worker.py" in lines
    assert any(line.startswith("batchway api ") for line in lines)

    script = Path(sys.executable).with_name("batchway")  # the console script [project.scripts] installs
    assert script.exists(), f"no {script}: install batchway into this interpreter's environment"
    helped: set[tuple[str, ...]] = set()
    for where, argv in commands:
        if argv[0] == "python":
            assert argv == ["python", "worker.py"], where
            continue
        path = tuple(_parse_batchway(argv))
        if path not in helped:  # the installed entry point really starts and knows the command
            helped.add(path)
            result = subprocess.run(
                [str(script), *path[1:], "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"{where}: {' '.join(path)} --help:\n{result.stderr}"
            for option in (arg.split("=")[0] for arg in argv if arg.startswith("--")):
                assert option in result.stdout, f"{where}: {option} not in {' '.join(path)} --help"


def test_python_worker_py_imports_from_the_image_workdir() -> None:
    # `python worker.py` in /app (the Dockerfile's WORKDIR, laid out like this checkout): load the file
    # under another name, so every import runs but main() does not.
    code = "import runpy; assert callable(runpy.run_path('worker.py', run_name='compose_check')['main'])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_dockerfile_builds_what_the_commands_need() -> None:
    instructions = []
    for line in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    copied = set()
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _destination = rest.split()
            copied.update(sources)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["only-include"]
    # Everything the wheel is built from, the readme pyproject names, and worker.py for `python worker.py`.
    assert {*wheel, "pyproject.toml", pyproject["project"]["readme"], "worker.py"} <= copied
    assert ("WORKDIR", "/app") in instructions
    assert ("RUN", "pip install --no-cache-dir .") in instructions
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert pyproject["project"]["scripts"]["batchway"] == "batchway.cli:app"
