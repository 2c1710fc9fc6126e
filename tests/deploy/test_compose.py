"""The container stack as files: docker-compose validates the compose file, and the parts agree with each other.

No Docker engine is needed: docker-compose 1.29 validates against the Compose schema without a daemon (`config`),
and the rest reads the files: compose, Dockerfile, .dockerignore, nginx, Prometheus, Alertmanager and Grafana.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support import require_tool

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
MLFLOW_DOCKERFILE = REPO / "deploy" / "mlflow" / "Dockerfile"
CONSTRAINTS = REPO / "constraints.txt"
DOCKERIGNORE = REPO / ".dockerignore"
NGINX = REPO / "deploy" / "nginx.conf"
POSTGRES_INIT = REPO / "deploy" / "postgres-init.sql"
DATASOURCES = REPO / "dashboards" / "provisioning" / "datasources" / "datasources.yml"
# The .env variable of each database role's password (tagwatch/roles.py makes the roles in `tagwatch init`).
ROLE_PASSWORDS = {
    "api": "TAGWATCH_API_DB_PASSWORD",
    "monitor": "TAGWATCH_MONITOR_DB_PASSWORD",
    "grafana": "TAGWATCH_GRAFANA_DB_PASSWORD",
}

# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $VAR; $$ is "$".
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


# --- loading -----------------------------------------------------------------------------------------------------
@cache
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example: not NAME=value: {line!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f".env.example: not a variable name: {name!r}"
        assert name not in values, f".env.example: {name} twice"
        values[name] = value
    return values


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string value (not keys), with ``env`` as the environment."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        current = env.get(name)
        missing = not current if op in (":-", ":?") else current is None
        if not missing:
            return str(current)
        if op in (":-", "-"):
            return str(arg)
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VARIABLE.sub(replace, value)


@cache
def compose() -> dict[str, Any]:
    """The compose file as docker-compose sees it with the .env.example values (YAML anchors and merges resolved)."""
    return dict(interpolate(yaml.safe_load(COMPOSE.read_text()), env_example()))


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def tagwatch_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if svc["image"].split(":")[0] == "tagwatch"}


def _depends_on(svc: Mapping[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cfg or {}).get("condition", "service_started") for name, cfg in deps.items()}


def _healthcheck(svc: Mapping[str, Any]) -> dict[str, Any] | None:
    check = svc.get("healthcheck")
    if not check or check.get("disable") or check.get("test") in ("NONE", ["NONE"]):
        return None
    return dict(check)


def _mounts(svc: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(type, source, target) of each entry of ``volumes``: "bind" for a host path, "volume" for a named volume."""
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            yield entry["type"], entry.get("source", ""), entry["target"]
            continue
        parts = entry.split(":")
        if len(parts) == 1:
            yield "volume", "", parts[0]  # anonymous
            continue
        source, target = parts[0], parts[1]
        yield ("bind" if source.startswith((".", "/", "~")) else "volume"), source, target


def _host_path(svc: Mapping[str, Any], container_path: str) -> Path | None:
    """The repository file a bind mount of ``svc`` shows at ``container_path`` (None: not bind-mounted)."""
    path = PurePosixPath(container_path)
    for kind, source, target in _mounts(svc):
        if kind != "bind":
            continue
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return REPO / source / path.relative_to(target)
    return None


def _listening_ports(svc: Mapping[str, Any]) -> set[int]:
    """Container ports a service is known to listen on: expose, the container side of ports, `--port N`."""
    ports = {int(p) for p in svc.get("expose") or []}
    for mapping in svc.get("ports") or []:
        ports.add(int(str(mapping).rsplit(":", 1)[-1].split("/")[0]))
    command = svc.get("command") or []
    ports |= {int(command[i + 1]) for i, arg in enumerate(command[:-1]) if arg == "--port"}
    return ports


def _flag(svc: Mapping[str, Any], name: str) -> str:
    # A command is a list of arguments, or a shell line (`sh -c "... && exec program --flag=..."`).
    args = [word for arg in svc.get("command") or [] for word in shlex.split(arg)]
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{name}=")]
    assert len(values) == 1, f"{name}= once in the command: {svc.get('command')}"
    return values[0]


def _host_port(address: str) -> tuple[str, int | None]:
    address = re.sub(r"^[a-z]+://", "", address).split("/", 1)[0]
    host, _, port = address.partition(":")
    return host, int(port) if port else None


def _assert_reaches_a_service(address: str, where: str) -> None:
    host, port = _host_port(address)
    if host in ("localhost", "127.0.0.1"):
        return
    assert host in services(), f"{where}: {address!r} names no compose service"
    assert port in _listening_ports(services()[host]), f"{where}: {host} does not listen on {port}"


# --- docker-compose itself ---------------------------------------------------------------------------------------
def _docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe = require_tool("docker-compose")
    # A clean environment: variables of the caller's shell would win over the env file's.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [exe, "-f", str(COMPOSE), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo-profile"])
def test_docker_compose_validates_with_the_example_env(profile: list[str]) -> None:
    result = _docker_compose("--env-file", str(ENV_EXAMPLE), *profile, "config")
    assert result.returncode == 0, result.stderr
    assert "is not set" not in result.stderr, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == set(services())
    # The interpolation these tests use agrees with docker-compose's.
    for name, svc in rendered["services"].items():
        assert svc.get("environment") == services()[name].get("environment"), name
        assert svc["image"] == services()[name]["image"]


def test_docker_compose_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _docker_compose("--env-file", str(empty), "config", "-q")
    assert result.returncode != 0
    assert "in .env" in result.stderr, result.stderr


# --- .env.example ------------------------------------------------------------------------------------------------
def test_every_variable_of_the_compose_file_is_in_the_env_example() -> None:
    used = {m.group("braced") or m.group("bare") for m in _VARIABLE.finditer(COMPOSE.read_text()) if m.group(0) != "$$"}
    assert {
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "GF_SECURITY_ADMIN_PASSWORD",
        *ROLE_PASSWORDS.values(),
        "TAGWATCH_REPLAY_KEY",
    } <= used
    assert used - set(env_example()) == set()


def test_env_example_holds_placeholders_for_secrets() -> None:
    secrets = {k: v for k, v in env_example().items() if re.search(r"PASSWORD|SECRET|TOKEN|WEBHOOK|_KEY$", k)}
    assert {*ROLE_PASSWORDS.values(), "TAGWATCH_REPLAY_KEY"} <= set(secrets)
    assert secrets
    for name, value in secrets.items():
        # Required secrets hold a placeholder; optional ones (the Slack / e-mail receivers) are empty.
        optional = name.startswith("ALERTMANAGER_")
        assert value == "" if optional else value.startswith("change-me"), f"{name} in .env.example: {value!r}"


# --- services, dependencies, health --------------------------------------------------------------------------------
def test_the_stack_has_the_designed_services() -> None:
    assert set(services()) == {
        "postgres",
        "init",
        "api",
        "proxy",
        "monitor",
        "retrain-worker",
        "prometheus",
        "alertmanager",
        "grafana",
        "alert-sink",
        "replay",
        "mlflow",
    }
    assert services()["replay"]["profiles"] == ["demo"]


def test_depends_on_targets_exist_and_conditions_fit_them() -> None:
    for name, svc in services().items():
        for target_name, condition in _depends_on(svc).items():
            assert target_name in services(), f"{name} depends on unknown {target_name}"
            target = services()[target_name]
            assert not target.get("profiles") or svc.get("profiles"), f"{name} depends on profile-only {target_name}"
            if condition == "service_healthy":
                assert _healthcheck(target), f"{name} waits for {target_name} to be healthy: it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{name} waits for {target_name} to complete: not one-shot"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


def test_long_running_services_have_a_full_healthcheck() -> None:
    for name, svc in services().items():
        assert "restart" in svc, f"{name}: say whether it restarts"
        if svc["restart"] == "no":
            # One-shot tagwatch containers would otherwise run the image's API healthcheck and turn "unhealthy".
            assert svc.get("healthcheck", {}).get("disable") is True, f"{name}: disable the image's healthcheck"
            continue
        check = _healthcheck(svc)
        assert check, f"{name} has no healthcheck"
        for key in ("test", "interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck without {key}"


def test_images_are_pinned_to_a_version() -> None:
    for name, svc in services().items():
        image = svc.get("image")
        assert image, f"{name} has no image"
        last = image.split("@")[0].rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else None
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}: pin a version"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image}: pin a version, not a moving tag"


def test_the_tagwatch_image_is_built_once_and_exists_before_its_other_users_start() -> None:
    builders = [name for name, svc in services().items() if "build" in svc and svc["image"].startswith("tagwatch:")]
    assert len(builders) == 1
    builder = services()[builders[0]]
    assert builder["image"].startswith("tagwatch:")
    context = builder["build"] if isinstance(builder["build"], str) else builder["build"]["context"]
    assert (REPO / context / "Dockerfile").is_file()

    def needs(name: str) -> set[str]:
        direct = set(_depends_on(services()[name]))
        return direct.union(*(needs(d) for d in direct))

    # docker-compose 1.29 pulls a missing image for a service without `build`: the builder must come first.
    for name, svc in tagwatch_services().items():
        assert svc["image"] == builder["image"]
        if name != builders[0]:
            assert builders[0] in needs(name), f"{name} may start before {builders[0]} built its image"


def test_api_is_scalable() -> None:
    api = services()["api"]
    assert "ports" not in api, "a fixed host port allows one replica only: the proxy publishes the API"
    assert "container_name" not in api
    assert 8000 in _listening_ports(api)


def test_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, svc in services().items():
        for kind, source, target in _mounts(svc):
            if kind == "bind":
                assert source.startswith("./"), f"{name}: bind-mount repository paths only ({source})"
                assert (REPO / source).exists(), f"{name}: {source} is not in the repository"
            elif source:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
            else:
                pytest.fail(f"{name}: anonymous volume at {target}: name it")
    assert declared == used, f"declared but unused: {declared - used}"


def test_stateful_tagwatch_services_share_the_home_volume_and_the_databases() -> None:
    from sqlalchemy.engine import make_url

    from tagwatch.settings import Settings

    postgres = services()["postgres"]["environment"]
    init_script = _host_path(services()["postgres"], "/docker-entrypoint-initdb.d/10-registry.sql")
    assert init_script == POSTGRES_INIT
    assert re.search(r"CREATE DATABASE registry\b", POSTGRES_INIT.read_text(), re.IGNORECASE)
    stateful = {n: s for n, s in tagwatch_services().items() if "TAGWATCH_DATABASE_URL" in (s.get("environment") or {})}
    assert set(stateful) == {"init", "api", "monitor", "retrain-worker"}
    for name, svc in tagwatch_services().items():
        env = svc.get("environment") or {}
        for key in env:
            field = key.removeprefix("TAGWATCH_").lower()
            assert key.startswith("TAGWATCH_"), f"{name}: {key}"
            assert field in Settings.model_fields or key in _cli_envvars(), f"{name}: {key} is no tagwatch setting"
    for name, svc in stateful.items():
        env = svc["environment"]
        assert ("volume", "tagwatch-home", env["TAGWATCH_HOME"]) in set(_mounts(svc)), name
        for key, database in (
            ("TAGWATCH_DATABASE_URL", postgres["POSTGRES_DB"]),
            ("TAGWATCH_REGISTRY_URL", "registry"),
        ):
            url = make_url(env[key])
            assert url.drivername == "postgresql+psycopg", f"{name}: {key}: tagwatch uses psycopg 3"
            assert (url.host, url.port, url.database) == ("postgres", 5432, database), f"{name}: {key}"
        assert env["TAGWATCH_AUTO_MIGRATE"] == "false", f"{name}: init migrates, replicas must not race"


def test_spill_files_have_a_volume_of_their_own() -> None:
    """The api spills to the tagwatch-spill volume, not the home volume (a full spill must not stop a model or a
    report from being saved); the monitor mounts it read-only, so `tagwatch prune` can report its usage."""
    api, monitor = services()["api"], services()["monitor"]
    spill_dir = api["environment"]["TAGWATCH_SPILL_DIR"]
    home = api["environment"]["TAGWATCH_HOME"]
    assert PurePosixPath(home) not in PurePosixPath(spill_dir).parents
    assert spill_dir != home
    assert ("volume", "tagwatch-spill", spill_dir) in set(_mounts(api))
    assert "tagwatch-spill:" + spill_dir in api["volumes"]  # read-write
    assert monitor["environment"]["TAGWATCH_SPILL_DIR"] == spill_dir
    assert f"tagwatch-spill:{spill_dir}:ro" in monitor["volumes"]
    # Only those two see it; the home volume is another one.
    users = {name for name, svc in services().items() if any(src == "tagwatch-spill" for _, src, _ in _mounts(svc))}
    assert users == {"api", "monitor"}
    assert "tagwatch-spill" in (compose().get("volumes") or {})
    # The image makes the mount point, owned by its user: a new named volume starts with that owner.
    makes = [args for args in _dockerfile_args("RUN") if "install -d" in args and spill_dir in args]
    assert makes, f"the Dockerfile does not create {spill_dir}"
    user = _dockerfile_args("USER")[-1].split(":")[0]
    assert f"-o {user}" in makes[0]


def _cli_envvars() -> set[str]:
    """Environment variables the `tagwatch` commands read as options (e.g. replay's TAGWATCH_API_KEY)."""
    import typer

    from commands.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    found: set[str] = set()
    for command in commands.values():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            found.update([envvar] if isinstance(envvar, str) else envvar or [])
    return found


def _database_users() -> dict[str, set[tuple[str | None, str | None]]]:
    """(user, password) of every database URL of each tagwatch service."""
    from sqlalchemy.engine import make_url

    return {
        name: {
            (make_url(value).username, make_url(value).password)
            for key, value in (svc.get("environment") or {}).items()
            if key.endswith("_URL") and str(value).startswith("postgresql")
        }
        for name, svc in tagwatch_services().items()
    }


def test_only_init_connects_as_the_owner_and_every_process_as_its_own_role() -> None:
    from tagwatch.roles import role_name
    from tagwatch.settings import Settings

    owner = services()["postgres"]["environment"]
    prefix = Settings.model_fields["db_role_prefix"].default
    example = env_example()
    users = _database_users()
    assert users["init"] == {(owner["POSTGRES_USER"], owner["POSTGRES_PASSWORD"])}
    assert users["api"] == {(role_name("api", prefix), example[ROLE_PASSWORDS["api"]])}
    assert users["monitor"] == {(role_name("monitor", prefix), example[ROLE_PASSWORDS["monitor"]])}
    # The retrain worker writes what the monitor's embedded runner writes: the monitor's role.
    assert users["retrain-worker"] == users["monitor"]
    assert not any(users[name] for name in users if name not in ("init", "api", "monitor", "retrain-worker"))
    # init makes the roles with the passwords the others log in with.
    init = services()["init"]["environment"]
    assert {kind: init[variable] for kind, variable in ROLE_PASSWORDS.items()} == {
        kind: example[variable] for kind, variable in ROLE_PASSWORDS.items()
    }
    # The owner's password reaches postgres and init only; each role's password only init and its user.
    holders: dict[str, set[str]] = {}
    for name, svc in services().items():
        text = json.dumps(svc.get("environment") or {})
        for variable in ("POSTGRES_PASSWORD", *ROLE_PASSWORDS.values()):
            if example[variable] in text:
                holders.setdefault(variable, set()).add(name)
    assert holders == {
        "POSTGRES_PASSWORD": {"postgres", "init"},
        # The MLflow UI reads the registry as the API's role (read-only there).
        ROLE_PASSWORDS["api"]: {"init", "api", "mlflow"},
        ROLE_PASSWORDS["monitor"]: {"init", "monitor", "retrain-worker"},
        ROLE_PASSWORDS["grafana"]: {"init", "grafana"},
    }
    assert len({example[v] for v in ("POSTGRES_PASSWORD", *ROLE_PASSWORDS.values())}) == 4


def _pin(package: str) -> str:
    pin = re.search(rf"^{re.escape(package)}==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    assert pin, f"constraints.txt does not pin {package}"
    return pin.group(1)


def test_the_mlflow_server_browses_the_registry_read_only_with_the_pinned_version() -> None:
    from sqlalchemy.engine import make_url

    from tagwatch.roles import REGISTRY_TABLE_GRANTS, role_name
    from tagwatch.settings import Settings

    mlflow = services()["mlflow"]
    # Its own image, built from deploy/mlflow with the release's version (tests below pin what is inside).
    assert mlflow["build"] == {"context": "deploy/mlflow"}
    assert REPO / mlflow["build"]["context"] / "Dockerfile" == MLFLOW_DOCKERFILE
    tagwatch_image = services()["init"]["image"]
    assert mlflow["image"] == "tagwatch-mlflow:" + tagwatch_image.split(":", 1)[1]
    # The image's ENTRYPOINT is `mlflow`: the command is the server's arguments, nothing run before it.
    assert "entrypoint" not in mlflow
    command = mlflow["command"]
    assert isinstance(command, list)
    assert command[0] == "server"
    assert _mlflow_dockerfile_json("ENTRYPOINT") == ["mlflow"]
    url = make_url(mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"])
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database) == ("postgres", 5432, "registry")
    prefix = Settings.model_fields["db_role_prefix"].default
    assert url.username == role_name("api", prefix)
    assert REGISTRY_TABLE_GRANTS["api"] == ("SELECT",)
    # The artifacts, read in place at the path the versions were registered under, never written or proxied.
    home = services()["api"]["environment"]["TAGWATCH_HOME"]
    assert ("volume", "tagwatch-home", home) in set(_mounts(mlflow))
    assert f"tagwatch-home:{home}:ro" in mlflow["volumes"]
    assert command[command.index("--default-artifact-root") + 1] == f"file://{home}/artifacts"
    assert "--no-serve-artifacts" in command
    assert 5000 in _listening_ports(mlflow)
    assert mlflow["ports"] == [f"{services()['proxy']['ports'][0].split(':')[0]}:5000:5000"]  # where 8080 is
    assert "5000/health" in " ".join(mlflow["healthcheck"]["test"])
    assert _depends_on(mlflow) == {"init": "service_completed_successfully"}


def test_the_mlflow_service_installs_nothing_at_start() -> None:
    mlflow = services()["mlflow"]
    started = json.dumps([mlflow.get("entrypoint"), mlflow.get("command")])
    assert not re.search(r"\bpip\b|\buv\b|install", started), started
    assert mlflow.get("entrypoint") in (None, ["mlflow"])


# --- deploy/mlflow/Dockerfile --------------------------------------------------------------------------------------
def _mlflow_dockerfile_json(keyword: str) -> list[str]:
    (args,) = [a for k, a in parse_dockerfile(MLFLOW_DOCKERFILE) if k == keyword]
    return list(json.loads(args))


def test_the_mlflow_image_is_the_official_one_of_the_pinned_version() -> None:
    # MLflow refuses a store migrated by another version: the server is the version tagwatch registers with.
    (base,) = [args for keyword, args in parse_dockerfile(MLFLOW_DOCKERFILE) if keyword == "FROM"]
    assert base == f"ghcr.io/mlflow/mlflow:v{_pin('mlflow-skinny')}"
    # The build's own check of the version it got names the same one.
    checked = re.findall(r"mlflow\.__version__ == '([^']+)'", MLFLOW_DOCKERFILE.read_text())
    assert checked == [_pin("mlflow-skinny")]


def test_the_mlflow_image_bakes_in_tagwatch_s_psycopg_pin() -> None:
    installs = [
        shlex.split(command)
        for keyword, args in parse_dockerfile(MLFLOW_DOCKERFILE)
        if keyword == "RUN"
        for command in args.split("&&")
        if "pip install" in command
    ]
    assert len(installs) == 1, installs
    (words,) = installs
    requirements = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    assert requirements == [f"psycopg[binary]=={_pin('psycopg')}"]
    assert _pin("psycopg-binary") == _pin("psycopg")
    assert "--no-cache-dir" in words


def test_the_mlflow_image_runs_as_tagwatch_s_user() -> None:
    """The home volume is tagwatch's (uid 10001, a 0750 directory): the UI reads the artifacts as the same uid."""
    users = [args for keyword, args in parse_dockerfile(MLFLOW_DOCKERFILE) if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1] == _dockerfile_args("USER")[-1] == "10001:10001"
    (healthcheck,) = [args for keyword, args in parse_dockerfile(MLFLOW_DOCKERFILE) if keyword == "HEALTHCHECK"]
    assert json.loads(healthcheck[healthcheck.index("CMD") + 3 :]) == services()["mlflow"]["healthcheck"]["test"][1:]


def test_the_replay_service_sends_the_key_the_api_accepts() -> None:
    from tagwatch.settings import parse_api_keys

    keys = parse_api_keys(services()["api"]["environment"]["TAGWATCH_FEEDBACK_KEYS"], "TAGWATCH_FEEDBACK_KEYS")
    secrets = {key.name: key.secret.get_secret_value() for key in keys}
    assert secrets == {"replay": env_example()["TAGWATCH_REPLAY_KEY"]}
    assert services()["replay"]["environment"] == {"TAGWATCH_API_KEY": secrets["replay"]}


def test_tagwatch_service_commands_are_valid_cli_invocations() -> None:
    import typer

    from commands.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name, svc in tagwatch_services().items():
        command = svc.get("command") or _dockerfile_json("CMD")
        assert command[0] in commands, f"{name}: no command `tagwatch {command[0]}`"
        # Parsing raises (a usage error) on an unknown option, a bad value or an extra argument.
        with commands[command[0]].make_context(command[0], list(command[1:])):
            pass


def test_the_demo_stream_starts_where_the_first_model_stops_learning() -> None:
    def option(service: str, name: str) -> str:
        command = services()[service]["command"]
        return str(command[command.index(name) + 1])

    # init trains on questions before --until; replay sends the ones from --since on: the drift the demo shows.
    assert option("init", "--until") == option("replay", "--since")
    assert option("replay", "--url") == "http://proxy:8080"
    _assert_reaches_a_service(option("replay", "--url"), "replay")


# --- Prometheus, Alertmanager, Grafana --------------------------------------------------------------------------
def test_prometheus_scrapes_the_compose_services_and_finds_its_rules() -> None:
    svc = services()["prometheus"]
    config_path = _flag(svc, "--config.file")
    host_config = _host_path(svc, config_path)
    assert host_config == REPO / "prometheus.yml"
    config = yaml.safe_load(host_config.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_sd = jobs["tagwatch-api"]["dns_sd_configs"]
    assert [(sd["names"], sd.get("type"), sd["port"]) for sd in api_sd] == [(["api"], "A", 8000)]
    assert 8000 in _listening_ports(services()["api"])
    targets = [t for job in jobs.values() for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "monitor:9108" in targets
    assert "retrain-worker:9109" in targets
    # The monitor leaves the retrains to the worker (no runner embedded beside its drift job).
    assert services()["monitor"]["environment"]["TAGWATCH_RETRAIN_RUNNER"] == "off"
    targets += [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    for target in targets:
        _assert_reaches_a_service(target, "prometheus.yml")
    config_dir = PurePosixPath(config_path).parent
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        host_rules = _host_path(svc, str(config_dir / rule_file))
        assert host_rules is not None, f"{rule_file} is not mounted into prometheus"
        assert host_rules.is_file(), f"{rule_file}: {host_rules} does not exist"


def test_alertmanager_config_is_mounted_and_its_webhooks_reach_services() -> None:
    svc = services()["alertmanager"]
    host_config = _host_path(svc, _flag(svc, "--config.file"))
    assert host_config == REPO / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(host_config.read_text())
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", []) if "url" in w]
    assert "http://alert-sink:9095/alerts" in urls
    for url in urls:
        _assert_reaches_a_service(url, "alertmanager.yml")


def test_grafana_provisioning_is_mounted_and_its_data_sources_reach_services() -> None:
    svc = services()["grafana"]
    datasources_dir = _host_path(svc, "/etc/grafana/provisioning/datasources")
    assert datasources_dir is not None
    assert datasources_dir.is_dir()
    files = sorted(datasources_dir.glob("*.y*ml"))
    assert files
    for path in files:
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            _assert_reaches_a_service(source["url"], f"{path.name}: {source['name']}")
            for value in re.findall(r"\$\{(\w+)\}", json.dumps(source)):
                assert value in svc["environment"], f"{path.name}: grafana has no {value} in its environment"
    for path in sorted((_host_path(svc, "/etc/grafana/provisioning/dashboards") or REPO / "missing").glob("*.y*ml")):
        for provider in yaml.safe_load(path.read_text()).get("providers", []):
            folder = _host_path(svc, provider["options"]["path"])
            assert folder is not None, f"{path.name}: {provider['options']['path']} is not mounted"
            assert folder.is_dir(), f"{path.name}: {folder} does not exist"


def test_grafana_reads_the_request_log_as_its_read_only_role() -> None:
    from tagwatch.roles import role_name
    from tagwatch.settings import Settings

    assert _host_path(services()["grafana"], "/etc/grafana/provisioning/datasources/datasources.yml") == DATASOURCES
    (source,) = [s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"] if s["uid"] == "tagwatch-postgres"]
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["jsonData"]["database"] == services()["postgres"]["environment"]["POSTGRES_DB"]
    assert source["user"] == role_name("grafana", Settings.model_fields["db_role_prefix"].default)
    assert source["secureJsonData"]["password"] == "${" + ROLE_PASSWORDS["grafana"] + "}"
    env = services()["grafana"]["environment"]
    assert env[ROLE_PASSWORDS["grafana"]] == services()["init"]["environment"][ROLE_PASSWORDS["grafana"]]
    # Not the owner's credentials any more.
    assert "POSTGRES_PASSWORD" not in env
    assert "POSTGRES_USER" not in env


# --- nginx ---------------------------------------------------------------------------------------------------------
Directive = tuple[str, list[str], list[Any] | None]


def parse_nginx(text: str) -> list[Directive]:
    """nginx configuration as nested (name, args, block or None); fails on unbalanced braces or a missing ';'."""
    tokens = re.findall(r"#[^\n]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};#\"']+", text)
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    current: list[str] = []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token in (";", "{"):
            assert current, f"nginx: {token!r} without a directive"
            block: list[Any] | None = [] if token == "{" else None
            stack[-1].append((current[0], current[1:], block))
            if block is not None:
                stack.append(block)
            current = []
        elif token == "}":
            assert not current, f"nginx: {' '.join(current)} without ';'"
            assert len(stack) > 1, "nginx: unbalanced '}'"
            stack.pop()
        else:
            current.append(token)
    assert len(stack) == 1, "nginx: unclosed block"
    assert not current, f"nginx: {' '.join(current)} without ';'"
    return root


@pytest.mark.parametrize(
    "text",
    ["events { worker_connections 1 }", "http { server { listen 80; }", "http { } }", "user nginx"],
    ids=["missing-semicolon", "unclosed-block", "extra-brace", "trailing-directive"],
)
def test_nginx_parser_rejects_broken_configurations(text: str) -> None:
    with pytest.raises(AssertionError, match="nginx"):
        parse_nginx(text)


def test_nginx_parser_keeps_quoted_strings_and_drops_comments() -> None:
    parsed = parse_nginx('# a comment\nhttp { return 200 "ok; # not a comment\\n"; }')
    assert parsed == [("http", [], [("return", ["200", '"ok; # not a comment\\n"'], None)])]


def _find(directives: list[Directive], name: str) -> list[Directive]:
    return [d for d in directives if d[0] == name]


def test_nginx_resolves_the_api_replicas_at_request_time() -> None:
    proxy = services()["proxy"]
    assert _host_path(proxy, "/etc/nginx/nginx.conf") == NGINX
    (http,) = _find(parse_nginx(NGINX.read_text()), "http")
    body = http[2] or []
    (resolver,) = _find(body, "resolver")
    assert resolver[1][0] == "127.0.0.11", "Docker's embedded DNS server"
    assert any(a.startswith("valid=") for a in resolver[1]), "re-resolve often: replicas come and go"
    assert not any("api" in " ".join(d[1]) for d in _find(body, "upstream")), "a static upstream pins addresses"
    (server,) = _find(body, "server")
    server_body = server[2] or []
    listen = {int(d[1][0]) for d in _find(server_body, "listen")}
    assert listen == _listening_ports(proxy)
    locations = {" ".join(d[1]): d[2] or [] for d in _find(server_body, "location")}
    root = locations["/"]
    variables = {d[1][0]: d[1][1] for d in _find(root, "set")}
    (proxy_pass,) = _find(root, "proxy_pass")
    target = variables[proxy_pass[1][0]]
    assert target == "http://api:8000"
    _assert_reaches_a_service(target, "nginx.conf")
    # The proxy's healthcheck asks nginx itself, on a location it answers.
    health_url = next(a for a in _healthcheck(proxy)["test"] if a.startswith("http://"))  # type: ignore[index]
    assert _host_port(health_url)[1] in listen
    assert "= " + "/" + health_url.split("/", 3)[3] in locations


# --- Dockerfile and .dockerignore ------------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE)


@cache
def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def _dockerfile_args(keyword: str) -> list[str]:
    return [args for k, args in dockerfile() if k == keyword]


def _dockerfile_json(keyword: str) -> list[str]:
    (args,) = _dockerfile_args(keyword)
    return list(json.loads(args))


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for args in _dockerfile_args("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def test_dockerfile_is_multi_stage_pinned_and_runs_as_a_user() -> None:
    stages = [shlex.split(args) for args in _dockerfile_args("FROM")]
    assert len(stages) >= 2
    names = set()
    for stage in stages:
        image = next(a for a in stage if not a.startswith("--"))
        if image not in names:
            assert ":" in image, f"FROM {image}: pin a tag"
            assert not image.endswith(":latest"), f"FROM {image}: pin a version"
        if len(stage) >= 3 and stage[-2].upper() == "AS":
            names.add(stage[-1])
    users = _dockerfile_args("USER")
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    (healthcheck,) = _dockerfile_args("HEALTHCHECK")
    assert "CMD" in healthcheck
    assert "NONE" not in healthcheck
    assert _dockerfile_json("ENTRYPOINT") == ["tagwatch"]
    assert _dockerfile_json("CMD") == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert "8000" in " ".join(_dockerfile_args("EXPOSE"))


def test_dockerfile_healthcheck_is_the_api_service_healthcheck() -> None:
    (healthcheck,) = _dockerfile_args("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert services()["api"]["healthcheck"]["test"] == ["CMD", *command]


def test_dockerfile_installs_the_project_with_the_constraints() -> None:
    installs = [args for args in _dockerfile_args("RUN") if "pip install" in args]
    assert installs
    for args in installs:
        for command in args.split("&&"):
            if "pip install" in command:
                words = shlex.split(command)
                assert words[words.index("-c") + 1] == "constraints.txt", command
                assert "-e" not in words, command
                assert "--editable" not in words, command
                assert "[dev]" not in command
    assert any(shlex.split(c)[-1] == "." for a in installs for c in a.split("&&") if "pip install" in c)


def test_dockerfile_home_is_the_compose_volume() -> None:
    env = _dockerfile_env()
    assert env["TAGWATCH_HOME"] == "/var/lib/tagwatch"
    assert env["TAGWATCH_HOME"] in _dockerfile_args("VOLUME")[0]
    for name in ("init", "api", "monitor"):
        assert ("volume", "tagwatch-home", env["TAGWATCH_HOME"]) in set(_mounts(services()[name]))


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides; '!' re-includes."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _dockerignore_regex(line.lstrip("!").strip().strip("/"))
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerfile_copies_what_exists_and_the_build_context_keeps_it() -> None:
    from tagwatch.settings import BUNDLED_DATA, REPO_ROOT

    sources = []
    for args in _dockerfile_args("COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert not dockerignored(relative), f"COPY {source}: .dockerignore drops {relative}"
    # The questions the package reads by default are in the image.
    assert BUNDLED_DATA.relative_to(REPO_ROOT).as_posix() in sources


@pytest.mark.parametrize(
    "path",
    [".git/HEAD", ".venv/bin/python", "tests/conftest.py", "var/demo/tagwatch.db", ".env", "secrets/slack_webhook_url"],
)
def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize("path", ["tagwatch/__pycache__/cli.cpython-311.pyc", "tagwatch.egg-info/PKG-INFO"])
def test_dockerignore_drops_build_leftovers(path: str) -> None:
    assert dockerignored(path)
