"""The environment StreamLake's Airflow DAGs run in, derived from the settings in one place.

The DAG files (`dags/`) import no project code: they read what this module prepares, as environment
variables, so nothing is typed twice:

    AIRFLOW_CONN_STREAMLAKE_SPARK   the Spark connection, JSON form: {"conn_type": "spark", "host": <spark.master>}
    STREAMLAKE_AIRFLOW              JSON: jobs dir, py_files, jars, driver memory, Spark conf, the jobs'
                                    environment, datasets, the SQL server's refresh command, retries (`dag_config`)
    AIRFLOW_HOME, AIRFLOW__CORE__*  a local Airflow: SQLite metadata under var/airflow, the dags/ folder

The Spark side is `jobs.spark_session.spark_submit_command` taken apart, so a DAG task submits exactly
what `streamlake batch ...` submits. This module also builds the py_files archive (`make dist`).
It starts nothing: `streamlake airflow` execs Airflow with this environment.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import zipfile
from pathlib import Path

from conf.settings import PROJECT_DIR, VAR_DIR, Settings, conf_dir
from contracts.registry import DATASETS
from jobs.spark_session import PY_FILES, spark_submit_command, spark_submit_env

CONN_ID = "streamlake_spark"
CONFIG_VAR = "STREAMLAKE_AIRFLOW"
AIRFLOW_HOME = VAR_DIR / "airflow"
DAGS_DIR = PROJECT_DIR / "dags"
JOBS_DIR = PROJECT_DIR / "jobs"
DIST_DIR = PY_FILES.parent
# What a job imports, driver and executors alike; the CLI and the API are not shipped.
SHIPPED_PACKAGES = ("contracts", "conf", "pipelines", "jobs")
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 300
# Airflow's UI; its own default (8080) is the ingestion API's.
DEFAULT_PORT = 8090
_APPLICATION = "<application>"


def spark_submit_options(settings: Settings, py_files: Path = PY_FILES) -> dict:
    """`spark_submit_command` taken apart: master, jars, driver memory, every `--conf` (and for a
    cluster master the py_files, which every task passes anyway)."""
    command = spark_submit_command(settings, Path(_APPLICATION), py_files=py_files)
    options = command[1:command.index(_APPLICATION)]
    parsed: dict = {"conf": {}}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag == "--conf":
            key, _, conf_value = value.partition("=")
            parsed["conf"][key] = conf_value
        elif flag in ("--master", "--jars", "--driver-memory", "--py-files"):
            parsed[flag[2:].replace("-", "_")] = value
        else:  # a new spark-submit option must get its operator argument here, not be dropped
            raise ValueError(f"spark_submit_command gained an option the DAGs do not pass on: {flag}")
    return parsed


def job_env(settings: Settings, base_path: str | None = None, py_files: Path = PY_FILES) -> dict[str, str]:
    """The environment of each spark-submit a DAG task runs.

    The jobs import the project from the py_files archive, ahead of the installed project, so a
    setting whose default is a path next to the code would point into the archive: every one of
    those is pinned to its value here, as are the master and the Spark conf the task submits (a job
    builds its session from its own settings, which would otherwise override what was submitted).
    """
    env = spark_submit_env({})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base_path if base_path is not None else os.environ.get("PATH", "")])
    env.update(pinned_settings_env(settings, py_files))
    return env


def pinned_settings_env(settings: Settings, py_files: Path = PY_FILES) -> dict[str, str]:
    """The settings a job importing the project from `py_files` must be given (see `job_env`);
    the CLI passes them too when it submits to a cluster."""
    options = spark_submit_options(settings, py_files)
    return {
        "STREAMLAKE_CONF_DIR": str(conf_dir()),
        "STREAMLAKE_LAKEHOUSE__ROOT": settings.lakehouse.root,
        "STREAMLAKE_JVM__JARS_DIR": str(settings.jvm.jars_dir),
        "STREAMLAKE_STREAMS__HEARTBEAT_DIR": str(settings.streams.heartbeat_dir),
        "STREAMLAKE_SPARK__MASTER": settings.spark.master,
        "STREAMLAKE_SPARK__CONF": json.dumps(options["conf"]),
    }


def spark_connection(settings: Settings) -> str:
    """The Airflow connection in JSON form: a URI would need `local[2]` percent-encoded, and one that
    fails to parse makes the provider fall back to `yarn` without a word."""
    return json.dumps({"conn_type": "spark", "host": settings.spark.master})


def serve_refresh_command() -> list[str]:
    """What a DAG runs once it has published: the running SQL server registers the new tables."""
    return [str(Path(sys.executable).parent / "streamlake"), "serve", "--refresh"]


def dag_config(
    settings: Settings, *, py_files: Path = PY_FILES, retries: int = DEFAULT_RETRIES, retry_delay_s: int = DEFAULT_RETRY_DELAY_S,
) -> dict:
    """What the DAG files read from STREAMLAKE_AIRFLOW."""
    options = spark_submit_options(settings, py_files)
    return {
        "conn_id": CONN_ID,
        "jobs_dir": str(JOBS_DIR),
        "py_files": str(py_files),
        "jars": options["jars"],
        "driver_memory": options["driver_memory"],
        "spark_conf": options["conf"],
        "env_vars": job_env(settings, py_files=py_files),
        "datasets": sorted(DATASETS),
        "serve_refresh_command": shlex.join(serve_refresh_command()),
        "retries": retries,
        "retry_delay_s": retry_delay_s,
    }


def airflow_environment(
    settings: Settings, *, home: Path = AIRFLOW_HOME, py_files: Path = PY_FILES, port: int = DEFAULT_PORT,
    retries: int = DEFAULT_RETRIES, retry_delay_s: int = DEFAULT_RETRY_DELAY_S,
) -> dict[str, str]:
    """The variables to add to an Airflow process's environment (scheduler, `airflow dags test`, ...)."""
    config = dag_config(settings, py_files=py_files, retries=retries, retry_delay_s=retry_delay_s)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Tasks reach the API server's execution API through this; its default assumes port 8080.
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        f"AIRFLOW_CONN_{CONN_ID.upper()}": spark_connection(settings),
        CONFIG_VAR: json.dumps(config),
        "PATH": config["env_vars"]["PATH"],
    }


# What a deployment decides for itself (docker-compose.yml): where Airflow keeps its state, its
# metadata DB, where its API listens and is reached. Everything else follows from the settings.
DEPLOYMENT_VARS = ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API__HOST", "AIRFLOW__API__PORT",
                   "AIRFLOW__API__BASE_URL")


def deployment_environment(settings: Settings, base: dict[str, str], **options: int) -> dict[str, str]:
    """The whole environment of one Airflow component of a deployment: `base` (the process's own)
    with `airflow_environment` on top, except the DEPLOYMENT_VARS that `base` sets, which it keeps."""
    env = {**base, **airflow_environment(settings, **options)}
    env.update({key: base[key] for key in DEPLOYMENT_VARS if key in base})
    return env


def build_py_files(target: Path = PY_FILES) -> Path:
    """Zip the packages a job imports (PySpark puts only .zip, .egg and .jar py_files on the
    executors' path, so not a wheel); written next to the target, then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # One partial file per process: two submits building at once must not write the same file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in SHIPPED_PACKAGES:
            for path in sorted((PROJECT_DIR / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    archive.write(path, path.relative_to(PROJECT_DIR).as_posix())
    partial.replace(target)
    return target


if __name__ == "__main__":  # `make dist`
    print(build_py_files(Path(sys.argv[1]) if len(sys.argv) > 1 else PY_FILES))
