"""Static checks of the docker-compose stack (docker-compose.yaml, .env.sample, Dockerfile).

Docker cannot run where the tests run, so the stack's wiring is checked here instead: the
services exist, every `${VAR}` has a value in .env.sample, volumes and dependencies resolve,
the Airflow containers get both connections and the connection URIs point at the compose
services, the CeleryExecutor runs on Redis with two workers that share no staging disk, and
MinIO gets a private staging bucket whose objects expire. Each checker is a small function
returning the problems it found; every one is run on the real files (no problems expected)
and on a broken copy (the problem must be reported), so none of them can pass by checking
nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_SAMPLE = REPO / ".env.sample"
DOCKERFILE = REPO / "Dockerfile"

WORKER_SERVICES = ("airflow-worker-1", "airflow-worker-2")
REQUIRED_SERVICES = (
    "postgres",
    "flyway",
    "redis",
    "minio",
    "minio-init",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    *WORKER_SERVICES,
)
AIRFLOW_SERVICES = tuple(s for s in REQUIRED_SERVICES if s.startswith("airflow-"))
CONNECTION_VARS = (
    "AIRFLOW_CONN_USERBOOKINGS_DB",
    "AIRFLOW_CONN_SYNTH_S3",
    "AIRFLOW_CONN_SYNTH_TARGET_DB",
)
BUCKET = "synthetic"
#: The private bucket real rows are staged in (SynthHook's default: `<bucket>-staging`).
STAGING_BUCKET = f"{BUCKET}-staging"
#: Named volumes Celery workers may share: task logs (as in Airflow's own compose) and the
#: login file. Staged real rows must never be among them.
SHAREABLE_VOLUMES = frozenset({"airflow-logs", "airflow-auth"})
SOURCE_DB = "userbookings"

# `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+x}`,
# and `$VAR`.
# `$$` is compose's escape for a literal `$` (expanded later by the container's shell).
_VAR_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """Parse a docker compose `.env` file: `KEY=value` lines; blank lines and `#` lines skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"line {number} is not KEY=value: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _strings(node: Any) -> list[str]:
    """Every string (keys and values) in a parsed YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def referenced_vars(compose: dict[str, Any]) -> set[str]:
    """Variables docker compose interpolates from the environment / .env.

    Scans the parsed file (comments are not interpolated), after dropping `$$` escapes.
    """
    names: set[str] = set()
    for text in _strings(compose):
        for match in _VAR_RE.finditer(text.replace("$$", "")):
            names.add(match.group(1) or match.group(2))
    return names


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, given as a mapping or as a list of `KEY=value`."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on_of(service: dict[str, Any]) -> list[str]:
    deps = service.get("depends_on") or []
    return list(deps) if isinstance(deps, dict | list) else [deps]


def _volume_parts(entry: str | dict[str, Any]) -> tuple[str, str, str]:
    """(type, source, target) of a short- or long-syntax volume entry."""
    if isinstance(entry, dict):
        source = str(entry.get("source", ""))
        kind = entry.get("type") or ("bind" if source.startswith((".", "/", "~")) else "volume")
        return kind, source, str(entry.get("target", ""))
    parts = entry.split(":")
    if len(parts) == 1:  # anonymous volume
        return "volume", "", parts[0]
    source, target = parts[0], parts[1]
    kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
    return kind, source, target


def volume_entries(compose: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(service, type, source, target) for every volume of every service."""
    return [
        (name, *_volume_parts(entry))
        for name, service in (compose.get("services") or {}).items()
        for entry in service.get("volumes") or []
    ]


def dockerfile_base_image(text: str) -> str:
    """The image of the last `FROM` (the stage that is built)."""
    images = re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    if not images:
        raise ValueError("Dockerfile has no FROM line")
    return images[-1]


def s3_extra(uri: str) -> dict[str, Any]:
    """The extra of an `aws://` connection URI, as Airflow reads it.

    Airflow takes `__extra__` as the whole extra (JSON); otherwise each query parameter is one
    string-valued extra field.
    """
    query = dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))
    if "__extra__" in query:
        return json.loads(query["__extra__"])
    return query


# --------------------------------------------------------------------------------------------
# Checkers: each returns a list of human-readable problems (empty = fine)
# --------------------------------------------------------------------------------------------


def check_services(
    compose: dict[str, Any], required: tuple[str, ...] = REQUIRED_SERVICES
) -> list[str]:
    services = compose.get("services") or {}
    return [f"service {name!r} is missing" for name in required if name not in services]


def check_vars_defined(compose: dict[str, Any], env: dict[str, str]) -> list[str]:
    return [
        f"${{{name}}} is used in docker-compose.yaml but not defined in .env.sample"
        for name in sorted(referenced_vars(compose) - set(env))
    ]


def check_named_volumes(compose: dict[str, Any]) -> list[str]:
    declared = set(compose.get("volumes") or {})
    return [
        f"service {service!r} uses volume {source!r}, which is not declared under `volumes:`"
        for service, kind, source, _ in volume_entries(compose)
        if kind == "volume" and source and source not in declared
    ]


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    services = compose.get("services") or {}
    return [
        f"service {name!r} depends on {target!r}, which is not a service"
        for name, service in services.items()
        for target in depends_on_of(service)
        if target not in services
    ]


def check_connections(
    compose: dict[str, Any],
    services: tuple[str, ...] = AIRFLOW_SERVICES,
    conn_vars: tuple[str, ...] = CONNECTION_VARS,
) -> list[str]:
    problems = []
    for name in services:
        env = environment_of((compose.get("services") or {}).get(name) or {})
        for var in conn_vars:
            if not env.get(var):
                problems.append(f"service {name!r} does not get {var}")
            elif env[var] != f"${{{var}}}":
                problems.append(f"service {name!r} sets {var} inline instead of from .env")
    return problems


def check_shared_airflow_settings(
    compose: dict[str, Any], services: tuple[str, ...] = AIRFLOW_SERVICES
) -> list[str]:
    """Settings that only work when every Airflow container has the same value."""
    shared = (
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "SYNTH_SQL_DIR",
        "SYNTH_SPECS_DIR",
    )
    all_services = compose.get("services") or {}
    envs = {name: environment_of(all_services.get(name) or {}) for name in services}
    problems = []
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        if None in values.values() or len(set(values.values())) != 1:
            problems.append(f"{key} differs between the Airflow services: {values}")
    first = envs.get(services[0], {}) if services else {}
    if first.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        problems.append("the Airflow services do not use the CeleryExecutor")
    api_url = urlsplit(first.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
    if api_url.hostname not in all_services or api_url.path.rstrip("/") != "/execution":
        problems.append(
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL must be "
            "http://<api-server service>:8080/execution/"
        )
    if first.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() != "false":
        problems.append("AIRFLOW__CORE__LOAD_EXAMPLES must be false")
    return problems


def check_connection_uris(env: dict[str, str], services: set[str]) -> list[str]:
    """The connection URIs parse and point at compose services with the stack's credentials."""
    problems = []
    pg = urlsplit(env.get("AIRFLOW_CONN_USERBOOKINGS_DB", ""))
    if pg.scheme not in ("postgres", "postgresql"):
        problems.append(f"AIRFLOW_CONN_USERBOOKINGS_DB has scheme {pg.scheme!r}, not postgresql")
    if pg.hostname not in services:
        problems.append(
            f"AIRFLOW_CONN_USERBOOKINGS_DB host {pg.hostname!r} is not a compose service"
        )
    if pg.port != 5432:
        problems.append("AIRFLOW_CONN_USERBOOKINGS_DB must use the container port 5432")
    if pg.path.lstrip("/") != SOURCE_DB:
        problems.append(f"AIRFLOW_CONN_USERBOOKINGS_DB must name the database {SOURCE_DB!r}")
    if (pg.username, pg.password) != (
        env.get("USERBOOKINGS_USER"),
        env.get("USERBOOKINGS_PASSWORD"),
    ):
        problems.append(
            "AIRFLOW_CONN_USERBOOKINGS_DB login differs from USERBOOKINGS_USER/_PASSWORD"
        )

    raw_s3 = env.get("AIRFLOW_CONN_SYNTH_S3", "")
    s3 = urlsplit(raw_s3)
    if s3.scheme != "aws":
        problems.append(f"AIRFLOW_CONN_SYNTH_S3 has scheme {s3.scheme!r}, not aws")
    if (s3.username, s3.password) != (env.get("MINIO_ROOT_USER"), env.get("MINIO_ROOT_PASSWORD")):
        problems.append("AIRFLOW_CONN_SYNTH_S3 keys differ from MINIO_ROOT_USER/_PASSWORD")
    try:
        extra = s3_extra(raw_s3)
    except json.JSONDecodeError as exc:
        return [*problems, f"AIRFLOW_CONN_SYNTH_S3 __extra__ is not JSON: {exc}"]
    endpoint = urlsplit(str(extra.get("endpoint_url", "")))
    if endpoint.hostname not in services or endpoint.port != 9000:
        problems.append(
            f"AIRFLOW_CONN_SYNTH_S3 endpoint_url {endpoint.geturl()!r} is not <service>:9000"
        )
    if extra.get("region_name") != "us-east-1":
        problems.append("AIRFLOW_CONN_SYNTH_S3 must set region_name=us-east-1")
    config_kwargs = extra.get("config_kwargs")
    if not isinstance(config_kwargs, dict):
        # A plain `config_kwargs=...` query parameter reaches the provider as a string and
        # crashes it; only `__extra__` JSON carries a dict.
        problems.append(
            "AIRFLOW_CONN_SYNTH_S3 config_kwargs must be a JSON object inside __extra__"
        )
    elif (config_kwargs.get("s3") or {}).get("addressing_style") != "path":
        problems.append("AIRFLOW_CONN_SYNTH_S3 must use path-style addressing for MinIO")
    return problems


def check_bind_mounts(compose: dict[str, Any], root: Path) -> list[str]:
    return [
        f"service {service!r} mounts {source!r}, which does not exist in the repository"
        for service, kind, source, _ in volume_entries(compose)
        if kind == "bind" and source.startswith(".") and not (root / source).exists()
    ]


def check_flyway(compose: dict[str, Any]) -> list[str]:
    service = (compose.get("services") or {}).get("flyway") or {}
    env = environment_of(service)
    locations = env.get("FLYWAY_LOCATIONS", "filesystem:/flyway/sql")
    problems = []
    if not locations.startswith("filesystem:"):
        return [f"FLYWAY_LOCATIONS {locations!r} is not a filesystem: location"]
    location = locations.removeprefix("filesystem:").rstrip("/")
    mounts = {
        target.rstrip("/"): source
        for _, kind, source, target in volume_entries({"services": {"f": service}})
        if kind == "bind"
    }
    if Path(mounts.get(location, "")).as_posix().removeprefix("./") != "sql/migrations":
        problems.append(f"flyway reads {location!r}, but ./sql/migrations is not mounted there")
    url = env.get("FLYWAY_URL", "")
    if (
        not url.startswith("jdbc:postgresql://")
        or urlsplit(url.removeprefix("jdbc:")).path.lstrip("/") != SOURCE_DB
    ):
        problems.append(f"FLYWAY_URL {url!r} does not point at the {SOURCE_DB!r} database")
    if "postgres" not in depends_on_of(service):
        problems.append("flyway does not wait for postgres")
    return problems


def check_bucket_created(compose: dict[str, Any], bucket: str = BUCKET) -> list[str]:
    """minio-init runs `mc mb --ignore-existing <alias>/<bucket>` (flags in any order).

    `--ignore-existing` matters: without it the second `docker compose up` fails.
    """
    service = (compose.get("services") or {}).get("minio-init") or {}
    script = " ".join(_strings([service.get("entrypoint"), service.get("command")]))
    for command in re.split(r"&&|\|\||;|\n", script):
        words = command.split()
        if (
            words[:2] == ["mc", "mb"]
            and "--ignore-existing" in words[2:]
            and any(re.fullmatch(rf"[\w-]+/{re.escape(bucket)}/?", word) for word in words[2:])
        ):
            return []
    return [f"minio-init does not run `mc mb --ignore-existing <alias>/{bucket}`"]


def _minio_init_commands(compose: dict[str, Any]) -> list[list[str]]:
    """The words of each shell command minio-init runs (split at `&&`, `||`, `;`, newlines)."""
    service = (compose.get("services") or {}).get("minio-init") or {}
    script = " ".join(_strings([service.get("entrypoint"), service.get("command")]))
    return [
        [word.strip("'\"") for word in command.split() if word not in ("{", "}")]
        for command in re.split(r"&&|\|\||;|\n", script)
    ]


def check_staging_bucket(
    compose: dict[str, Any], bucket: str = STAGING_BUCKET, days: int = 1
) -> list[str]:
    """minio-init creates the staging bucket, keeps it private and expires its objects."""

    def names_bucket(word: str) -> bool:
        return re.fullmatch(rf"[\w-]+/{re.escape(bucket)}/?", word) is not None

    problems = check_bucket_created(compose, bucket)
    commands = _minio_init_commands(compose)
    lifecycle = False
    for words in commands:
        if words[:4] == ["mc", "ilm", "rule", "add"] and any(map(names_bucket, words)):
            flags = " ".join(words[4:])
            lifecycle |= re.search(rf"--expire-days[= ]{days}\b", flags) is not None
        public = words[:3] == ["mc", "anonymous", "set"] and words[3:4] != ["none"]
        if public and any(map(names_bucket, words)):
            problems.append(f"minio-init gives anonymous {words[3]!r} access to {bucket}")
    if not lifecycle:
        problems.append(
            f"minio-init does not run `mc ilm rule add --expire-days {days} <alias>/{bucket}`"
        )
    return problems


def _waits_healthy(service: dict[str, Any], target: str) -> bool:
    deps = service.get("depends_on") or {}
    return isinstance(deps, dict) and (deps.get(target) or {}).get("condition") == (
        "service_healthy"
    )


def worker_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run `celery worker` (the image's entrypoint prefixes `airflow`)."""
    found = {}
    for name, service in (compose.get("services") or {}).items():
        command = service.get("command") or ""
        words = command.split() if isinstance(command, str) else [str(w) for w in command]
        if words[-2:] == ["celery", "worker"] or words[:2] == ["celery", "worker"]:
            found[name] = service
    return found


def check_celery(compose: dict[str, Any]) -> list[str]:
    """CeleryExecutor on a healthy Redis, results in the metadata DB."""
    services = compose.get("services") or {}
    problems = []
    redis = services.get("redis")
    if redis is None:
        return ["service 'redis' (the Celery broker) is missing"]
    if not (redis.get("healthcheck") or {}).get("test"):
        problems.append("service 'redis' has no healthcheck")
    env = environment_of(services.get("airflow-scheduler") or {})
    if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        problems.append("the scheduler does not use the CeleryExecutor")
    broker = urlsplit(env.get("AIRFLOW__CELERY__BROKER_URL", ""))
    if broker.scheme != "redis" or broker.hostname != "redis":
        problems.append(f"AIRFLOW__CELERY__BROKER_URL {broker.geturl()!r} is not redis://redis")
    backend = env.get("AIRFLOW__CELERY__RESULT_BACKEND", "")
    result, metadata = (
        urlsplit(backend.removeprefix("db+")),
        urlsplit(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")),
    )
    if not backend.startswith("db+postgresql") or (result.hostname, result.path) != (
        metadata.hostname,
        metadata.path,
    ):
        problems.append(
            f"AIRFLOW__CELERY__RESULT_BACKEND {backend!r} is not the metadata DB "
            "(db+postgresql://...@postgres:5432/airflow)"
        )
    for name in ("airflow-scheduler", *worker_services(compose)):
        if not _waits_healthy(services.get(name) or {}, "redis"):
            problems.append(f"service {name!r} does not wait for redis to be healthy")
    return problems


def check_workers(compose: dict[str, Any], expected: int = 2) -> list[str]:
    """At least ``expected`` Celery workers, each a machine of its own: own hostname,
    a healthcheck, the api-server (execution API) up first, no shared volume but logs/auth."""
    workers = worker_services(compose)
    problems = []
    count = sum(int((s.get("deploy") or {}).get("replicas", 1)) for s in workers.values())
    if count < expected:
        problems.append(f"{count} Celery worker(s), expected {expected}")
    hostnames = [s.get("hostname") for s in workers.values() if s.get("hostname")]
    if len(hostnames) != len(set(hostnames)):
        problems.append(f"Celery workers share a hostname: {hostnames}")
    users: dict[str, list[str]] = {}
    for name, service in workers.items():
        if not (service.get("healthcheck") or {}).get("test"):
            problems.append(f"worker {name!r} has no healthcheck")
        if not _waits_healthy(service, "airflow-apiserver"):
            problems.append(f"worker {name!r} does not wait for the api-server to be healthy")
        replicas = int((service.get("deploy") or {}).get("replicas", 1))
        for entry in service.get("volumes") or []:
            kind, source, _ = _volume_parts(entry)
            if kind == "volume" and source:
                users.setdefault(source, []).extend([name] * replicas)
    for volume, names in sorted(users.items()):
        if len(names) > 1 and volume not in SHAREABLE_VOLUMES:
            problems.append(f"Celery workers share the volume {volume!r}: {sorted(set(names))}")
    return problems


def check_no_staging_disk(compose: dict[str, Any]) -> list[str]:
    """Real rows are staged in the object store: no Airflow service stages them on a disk."""
    problems = []
    for name, service in (compose.get("services") or {}).items():
        if not name.startswith("airflow-"):
            continue
        staging = environment_of(service).get("SYNTH_STAGING_DIR")
        if staging is not None and not staging.startswith("s3://"):
            problems.append(f"service {name!r} stages real rows in the folder {staging!r}")
        for entry in service.get("volumes") or []:
            _, source, target = _volume_parts(entry)
            if "staging" in f"{source} {target}":
                problems.append(f"service {name!r} mounts a staging volume {source!r}")
    return problems


def check_airflow_image(
    compose: dict[str, Any], dockerfile_text: str, services: tuple[str, ...] = AIRFLOW_SERVICES
) -> list[str]:
    problems = []
    base = dockerfile_base_image(dockerfile_text)
    if not re.fullmatch(r"apache/airflow:3\.3\.\d+(-python3\.\d+)?", base):
        problems.append(f"the Dockerfile builds on {base!r}, not apache/airflow:3.3.x")
    for name in services:
        service = (compose.get("services") or {}).get(name) or {}
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        dockerfile = (
            "Dockerfile"
            if isinstance(build, str)
            else (build or {}).get("dockerfile", "Dockerfile")
        )
        if context not in (".", "./") or dockerfile != "Dockerfile":
            problems.append(f"service {name!r} is not built from ./Dockerfile")
    return problems


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def env_sample() -> dict[str, str]:
    return parse_env_file(ENV_SAMPLE.read_text())


@pytest.fixture
def broken(compose: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the compose file to break.

    A JSON round trip rather than `copy.deepcopy`: YAML anchors make services share one
    `environment` dict and one `volumes` list, and deepcopy would keep them shared, so breaking
    one service would silently break all of them.
    """
    return json.loads(json.dumps(compose))


# --------------------------------------------------------------------------------------------
# The parsers themselves
# --------------------------------------------------------------------------------------------


def test_referenced_vars_handles_every_interpolation_form_and_the_escape() -> None:
    tree = {
        "a": "${PLAIN}",
        "b": "x-${WITH_DEFAULT:-1}-${WITH_DASH-2}-${REQUIRED:?set it}-${ALT:+y}",
        "c": ["$BARE/path", "$${CONTAINER_SIDE} and $$ALSO_CONTAINER"],
        "${IN_KEY}": 1,
    }
    assert referenced_vars(tree) == {
        "PLAIN",
        "WITH_DEFAULT",
        "WITH_DASH",
        "REQUIRED",
        "ALT",
        "BARE",
        "IN_KEY",
    }


def test_parse_env_file_skips_comments_and_unquotes() -> None:
    text = "# comment\n\nA=1\nexport B='two words'\nC=\"x\"\n# D=commented\nURI=aws://k:s@/?a=b&c=%2F\n"
    assert parse_env_file(text) == {
        "A": "1",
        "B": "two words",
        "C": "x",
        "URI": "aws://k:s@/?a=b&c=%2F",
    }
    with pytest.raises(ValueError, match="line 1"):
        parse_env_file("not a setting\n")


def test_compose_and_env_sample_parse(compose: dict[str, Any], env_sample: dict[str, str]) -> None:
    assert isinstance(compose.get("services"), dict)
    # the anchors resolved: every Airflow service got the shared environment
    assert "AIRFLOW__CORE__EXECUTOR" in environment_of(compose["services"]["airflow-scheduler"])
    assert env_sample, ".env.sample defines nothing"


# --------------------------------------------------------------------------------------------
# The real files, and each check against a broken copy
# --------------------------------------------------------------------------------------------


def test_every_needed_service_exists(compose: dict[str, Any], broken: dict[str, Any]) -> None:
    assert check_services(compose) == []
    del broken["services"]["minio-init"]
    assert check_services(broken) == ["service 'minio-init' is missing"]


def test_every_variable_is_defined_in_env_sample(
    compose: dict[str, Any], env_sample: dict[str, str], broken: dict[str, Any]
) -> None:
    assert referenced_vars(compose) >= set(CONNECTION_VARS)
    assert check_vars_defined(compose, env_sample) == []
    broken["services"]["minio"]["environment"]["EXTRA"] = "${NOT_IN_SAMPLE:-x}"
    assert check_vars_defined(broken, env_sample) == [
        "${NOT_IN_SAMPLE} is used in docker-compose.yaml but not defined in .env.sample"
    ]
    # a variable only in a comment of .env.sample does not count as defined
    commented = parse_env_file(ENV_SAMPLE.read_text().replace("\nAIRFLOW_UID=", "\n# AIRFLOW_UID="))
    assert (
        "${AIRFLOW_UID} is used in docker-compose.yaml but not defined in .env.sample"
        in check_vars_defined(compose, commented)
    )


def test_every_named_volume_is_declared(compose: dict[str, Any], broken: dict[str, Any]) -> None:
    assert {"postgres-data", "minio-data"} <= set(compose["volumes"])
    assert check_named_volumes(compose) == []
    broken["services"]["postgres"]["volumes"].append("undeclared-data:/srv")
    broken["services"]["minio"]["volumes"].append(
        {"type": "volume", "source": "other", "target": "/x"}
    )
    assert check_named_volumes(broken) == [
        "service 'postgres' uses volume 'undeclared-data', which is not declared under `volumes:`",
        "service 'minio' uses volume 'other', which is not declared under `volumes:`",
    ]


def test_every_depends_on_target_exists(compose: dict[str, Any], broken: dict[str, Any]) -> None:
    assert check_depends_on(compose) == []
    broken["services"]["airflow-init"]["depends_on"]["rabbitmq"] = {"condition": "service_healthy"}
    broken["services"]["flyway"]["depends_on"] = ["postgress"]
    assert check_depends_on(broken) == [
        "service 'flyway' depends on 'postgress', which is not a service",
        "service 'airflow-init' depends on 'rabbitmq', which is not a service",
    ]


def test_the_stack_starts_in_order(compose: dict[str, Any]) -> None:
    """Airflow starts after the source DB is migrated and the bucket exists."""
    services = compose["services"]
    init_deps = services["airflow-init"]["depends_on"]
    assert init_deps["flyway"]["condition"] == "service_completed_successfully"
    assert init_deps["minio-init"]["condition"] == "service_completed_successfully"
    assert init_deps["postgres"]["condition"] == "service_healthy"
    for name in AIRFLOW_SERVICES:
        if name != "airflow-init":
            deps = services[name]["depends_on"]
            assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "minio", "airflow-apiserver", "airflow-scheduler"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_airflow_services_get_both_connections(
    compose: dict[str, Any], broken: dict[str, Any]
) -> None:
    assert check_connections(compose) == []
    del broken["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SYNTH_S3"]
    broken["services"]["airflow-triggerer"]["environment"]["AIRFLOW_CONN_USERBOOKINGS_DB"] = (
        "postgresql://x@y/z"
    )
    assert check_connections(broken) == [
        "service 'airflow-scheduler' does not get AIRFLOW_CONN_SYNTH_S3",
        "service 'airflow-triggerer' sets AIRFLOW_CONN_USERBOOKINGS_DB inline instead of from .env",
    ]


def test_airflow_services_share_their_settings(
    compose: dict[str, Any], broken: dict[str, Any]
) -> None:
    assert check_shared_airflow_settings(compose) == []
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["SYNTH_SQL_DIR"] == "/opt/airflow/sql"
    broken["services"]["airflow-apiserver"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] = (
        "other"
    )
    for name in AIRFLOW_SERVICES:
        broken["services"][name]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = (
            "http://localhost:8080/execution/"
        )
    problems = check_shared_airflow_settings(broken)
    assert len(problems) == 2
    assert problems[0].startswith("AIRFLOW__API_AUTH__JWT_SECRET differs")
    assert problems[1].startswith("AIRFLOW__CORE__EXECUTION_API_SERVER_URL must be")


def test_connection_uris_point_at_the_compose_services(
    compose: dict[str, Any], env_sample: dict[str, str]
) -> None:
    services = set(compose["services"])
    assert check_connection_uris(env_sample, services) == []

    wrong_host = dict(env_sample)
    wrong_host["AIRFLOW_CONN_USERBOOKINGS_DB"] = (
        "postgresql://userbookings:userbookings@127.0.0.1:5432/userbookings"
    )
    assert check_connection_uris(wrong_host, services) == [
        "AIRFLOW_CONN_USERBOOKINGS_DB host '127.0.0.1' is not a compose service"
    ]

    # The shape the embedded local stack uses: fine for SeaweedFS on 127.0.0.1, wrong here.
    local_style = dict(env_sample)
    local_style["AIRFLOW_CONN_SYNTH_S3"] = (
        "aws://minioadmin:minioadmin@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A8333&region_name=us-east-1"
        "&config_kwargs=%7B%22s3%22%3A%7B%22addressing_style%22%3A%22path%22%7D%7D"
    )
    assert check_connection_uris(local_style, services) == [
        "AIRFLOW_CONN_SYNTH_S3 endpoint_url 'http://127.0.0.1:8333' is not <service>:9000",
        "AIRFLOW_CONN_SYNTH_S3 config_kwargs must be a JSON object inside __extra__",
    ]

    wrong_keys = dict(env_sample, MINIO_ROOT_PASSWORD="changed", USERBOOKINGS_USER="someone")
    assert check_connection_uris(wrong_keys, services) == [
        "AIRFLOW_CONN_USERBOOKINGS_DB login differs from USERBOOKINGS_USER/_PASSWORD",
        "AIRFLOW_CONN_SYNTH_S3 keys differ from MINIO_ROOT_USER/_PASSWORD",
    ]


def test_env_sample_shows_the_local_stack_uris_commented_out() -> None:
    text = ENV_SAMPLE.read_text()
    commented = [line for line in text.splitlines() if re.match(r"#\s*AIRFLOW_CONN_\w+=", line)]
    assert {line.split("=", 1)[0].lstrip("# ") for line in commented} == set(CONNECTION_VARS)
    assert all("127.0.0.1" in line for line in commented)
    assert "python -m airflow_synth.local env" in text


def test_mounted_host_paths_exist(compose: dict[str, Any], broken: dict[str, Any]) -> None:
    sources = {source for _, kind, source, _ in volume_entries(compose) if kind == "bind"}
    assert {
        "./dags",
        "./sql",
        "./specs",
        "./plugins",
        "./sql/migrations",
        "./docker/postgres-init",
    } <= sources
    assert check_bind_mounts(compose, REPO) == []
    broken["services"]["airflow-scheduler"]["volumes"].append("./no-such-folder:/opt/x")
    assert check_bind_mounts(broken, REPO) == [
        "service 'airflow-scheduler' mounts './no-such-folder', "
        "which does not exist in the repository"
    ]


def test_postgres_init_script_creates_the_source_database(compose: dict[str, Any]) -> None:
    scripts = sorted((REPO / "docker" / "postgres-init").iterdir())
    assert scripts, "docker/postgres-init is empty"
    for script in scripts:
        if script.suffix == ".sh":
            # the postgres image sources non-executable .sh files into its own shell instead
            assert os.access(script, os.X_OK), f"{script} is not executable"
    text = "\n".join(script.read_text() for script in scripts)
    assert re.search(rf"CREATE DATABASE {SOURCE_DB}\b", text)
    env = environment_of(compose["services"]["postgres"])
    assert env["POSTGRES_DB"] == "airflow"
    assert {"USERBOOKINGS_USER", "USERBOOKINGS_PASSWORD"} <= set(env)


def test_flyway_applies_sql_migrations(compose: dict[str, Any], broken: dict[str, Any]) -> None:
    assert check_flyway(compose) == []
    broken["services"]["flyway"]["volumes"] = ["./sql/features:/flyway/sql:ro"]
    broken["services"]["flyway"]["environment"]["FLYWAY_URL"] = (
        "jdbc:postgresql://postgres:5432/airflow"
    )
    assert check_flyway(broken) == [
        "flyway reads '/flyway/sql', but ./sql/migrations is not mounted there",
        "FLYWAY_URL 'jdbc:postgresql://postgres:5432/airflow' "
        "does not point at the 'userbookings' database",
    ]


def test_minio_init_creates_the_bucket(compose: dict[str, Any], broken: dict[str, Any]) -> None:
    assert check_bucket_created(compose) == []
    broken["services"]["minio-init"]["command"] = [
        "mc alias set local http://minio:9000 a b && mc mb local/other"
    ]
    assert check_bucket_created(broken) == [
        "minio-init does not run `mc mb --ignore-existing <alias>/synthetic`"
    ]
    # without --ignore-existing a second `docker compose up` would fail
    broken["services"]["minio-init"]["command"] = ["mc mb local/synthetic"]
    assert check_bucket_created(broken) != []


def test_celery_executor_runs_on_a_healthy_redis(
    compose: dict[str, Any], broken: dict[str, Any]
) -> None:
    assert check_celery(compose) == []
    env = environment_of(compose["services"]["airflow-scheduler"])
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    # the broker is not published on the host
    assert not compose["services"]["redis"].get("ports")

    for name in ("airflow-scheduler", "airflow-worker-2"):
        broken["services"][name]["depends_on"]["redis"] = {"condition": "service_started"}
    env = broken["services"]["airflow-scheduler"]["environment"]
    env["AIRFLOW__CELERY__RESULT_BACKEND"] = "redis://redis:6379/1"
    del broken["services"]["redis"]["healthcheck"]
    assert check_celery(broken) == [
        "service 'redis' has no healthcheck",
        "AIRFLOW__CELERY__RESULT_BACKEND 'redis://redis:6379/1' is not the metadata DB "
        "(db+postgresql://...@postgres:5432/airflow)",
        "service 'airflow-scheduler' does not wait for redis to be healthy",
        "service 'airflow-worker-2' does not wait for redis to be healthy",
    ]
    env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    assert "the scheduler does not use the CeleryExecutor" in check_celery(broken)
    # every Airflow container must agree on the executor and the broker
    assert any(
        p.startswith("AIRFLOW__CORE__EXECUTOR differs")
        for p in check_shared_airflow_settings(broken)
    )


def test_two_celery_workers_share_no_staging(
    compose: dict[str, Any], broken: dict[str, Any]
) -> None:
    workers = worker_services(compose)
    assert set(workers) == set(WORKER_SERVICES)
    assert check_workers(compose) == []
    assert check_no_staging_disk(compose) == []
    assert {w["hostname"] for w in workers.values()} == set(WORKER_SERVICES)
    for worker in workers.values():
        assert environment_of(worker)["DUMB_INIT_SETSID"] == "0"  # Celery's warm shutdown
        assert "SYNTH_STAGING_DIR" not in environment_of(worker)
    assert not any("staging" in name for name in compose["volumes"])

    # one worker is not a distributed deployment
    one = json.loads(json.dumps(compose))
    del one["services"]["airflow-worker-2"]
    assert check_workers(one) == ["1 Celery worker(s), expected 2"]
    # ... unless it has replicas (which then must not share a volume either)
    one["services"]["airflow-worker-1"]["deploy"] = {"replicas": 2}
    assert check_workers(one) == []
    one["services"]["airflow-worker-1"]["volumes"].append("scratch:/opt/airflow/scratch")
    assert check_workers(one) == ["Celery workers share the volume 'scratch': ['airflow-worker-1']"]

    for name in WORKER_SERVICES:
        broken["services"][name]["volumes"].append("airflow-staging:/opt/airflow/staging")
        broken["services"][name]["environment"]["SYNTH_STAGING_DIR"] = "/opt/airflow/staging"
    broken["services"]["airflow-worker-2"]["hostname"] = "airflow-worker-1"
    del broken["services"]["airflow-worker-1"]["depends_on"]["airflow-apiserver"]
    assert check_workers(broken) == [
        "Celery workers share a hostname: ['airflow-worker-1', 'airflow-worker-1']",
        "worker 'airflow-worker-1' does not wait for the api-server to be healthy",
        "Celery workers share the volume 'airflow-staging': "
        "['airflow-worker-1', 'airflow-worker-2']",
    ]
    assert check_no_staging_disk(broken) == [
        "service 'airflow-worker-1' stages real rows in the folder '/opt/airflow/staging'",
        "service 'airflow-worker-1' mounts a staging volume 'airflow-staging'",
        "service 'airflow-worker-2' stages real rows in the folder '/opt/airflow/staging'",
        "service 'airflow-worker-2' mounts a staging volume 'airflow-staging'",
    ]


def test_minio_init_creates_a_private_expiring_staging_bucket(
    compose: dict[str, Any], broken: dict[str, Any]
) -> None:
    assert check_staging_bucket(compose) == []
    assert check_bucket_created(compose) == []  # the published bucket too
    prefix = "mc alias set local http://minio:9000 a b && mc mb --ignore-existing local/synthetic"
    cases = {
        # no staging bucket at all
        "": [
            "minio-init does not run `mc mb --ignore-existing <alias>/synthetic-staging`",
            "minio-init does not run `mc ilm rule add --expire-days 1 <alias>/synthetic-staging`",
        ],
        # a lifecycle rule, but on the published bucket, and a week long
        " && mc mb --ignore-existing local/synthetic-staging"
        " && mc ilm rule add --expire-days 1 local/synthetic"
        " && mc ilm rule add --expire-days 7 local/synthetic-staging": [
            "minio-init does not run `mc ilm rule add --expire-days 1 <alias>/synthetic-staging`"
        ],
        # real rows readable by anyone
        " && mc mb --ignore-existing local/synthetic-staging"
        " && mc anonymous set download local/synthetic-staging"
        ' && mc ilm rule add --expire-days "1" local/synthetic-staging': [
            "minio-init gives anonymous 'download' access to synthetic-staging"
        ],
    }
    for tail, problems in cases.items():
        broken["services"]["minio-init"]["command"] = [prefix + tail]
        assert check_staging_bucket(broken) == problems, tail


def test_airflow_image_is_3_3_built_from_the_dockerfile(
    compose: dict[str, Any], broken: dict[str, Any]
) -> None:
    dockerfile_text = DOCKERFILE.read_text()
    assert check_airflow_image(compose, dockerfile_text) == []
    assert check_airflow_image(compose, "FROM apache/airflow:2.10.5-python3.11\n") == [
        "the Dockerfile builds on 'apache/airflow:2.10.5-python3.11', not apache/airflow:3.3.x"
    ]
    broken["services"]["airflow-triggerer"].pop("build")
    assert check_airflow_image(broken, dockerfile_text) == [
        "service 'airflow-triggerer' is not built from ./Dockerfile"
    ]


def test_dockerfile_installs_the_package_and_its_folders() -> None:
    text = DOCKERFILE.read_text()
    assert "download.pytorch.org/whl/cpu" in text
    # the CPU torch wheel goes in before the package, or pip pulls the CUDA build for SDV
    assert text.index("torch==") < text.index('"/opt/airflow/airflow-synth[argn,celery]"')
    # TabularARGN (synthesizer "auto"): its dependencies by the extra, the engine without its
    # pins (psutil<6 clashes with Airflow 3), after the package
    assert text.index("airflow-synth[argn,celery]") < text.index("--no-deps mostlyai-engine==")
    # the celery extra (the CeleryExecutor of the compose stack) exists and is pinned
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("apache-airflow-providers-celery") for req in extras["celery"])
    constraints = (REPO / "constraints.txt").read_text().splitlines()
    assert any(line.startswith("apache-airflow-providers-celery==") for line in constraints)
    # no local staging folder baked in: it would force local staging on every worker
    assert not re.search(r"^(ENV|ARG)\b.*SYNTH_STAGING_DIR", text, flags=re.MULTILINE)
    for folder in ("pyproject.toml", "README.md", "airflow_synth/", "dags/", "sql/", "plugins/"):
        assert re.search(rf"^COPY .*\b{re.escape(folder)}", text, flags=re.MULTILINE), folder
        assert (REPO / folder.rstrip("/")).exists(), (
            f"{folder} (copied by the Dockerfile) is missing"
        )
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".local", ".env"} <= set(ignored), (
        "the build context would carry the venv or real data"
    )


def test_s3_connection_configures_path_style_in_the_amazon_provider(
    tmp_path: Path, env_sample: dict[str, str]
) -> None:
    """The URI from .env.sample, read by Airflow's own parsers and the amazon provider.

    Runs in a subprocess with a throw-away AIRFLOW_HOME, so importing Airflow here touches
    neither the user's Airflow home nor other tests' configuration.
    """
    script = textwrap.dedent(
        """
        import json, os, sys
        from airflow.models.connection import Connection as CoreConnection
        from airflow.sdk.definitions.connection import Connection as SdkConnection
        from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
        uri = os.environ["AIRFLOW_CONN_SYNTH_S3"]
        out = {}
        for name, conn in (
            ("sdk", SdkConnection.from_uri(uri, conn_id="synth_s3")),
            ("core", CoreConnection(conn_id="synth_s3", uri=uri)),
        ):
            wrapper = AwsConnectionWrapper(conn=conn)
            out[name] = {
                "conn_type": conn.conn_type,
                "endpoint_url": wrapper.endpoint_url,
                "region_name": wrapper.region_name,
                "s3": wrapper.botocore_config.s3 if wrapper.botocore_config else None,
            }
        print(json.dumps(out))
        """
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW_CONN_SYNTH_S3": env_sample["AIRFLOW_CONN_SYNTH_S3"],
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {
        "conn_type": "aws",
        "endpoint_url": "http://minio:9000",
        "region_name": "us-east-1",
        "s3": {"addressing_style": "path"},
    }
    assert result == {"sdk": expected, "core": expected}
