"""The DAG folder as Airflow parses it: no import errors, the expected DAGs and tasks in order, tags
and retries, no project code imported, and the spark-submit command each task's hook builds: the
master of the connection (JSON form) and the same Spark setup as `streamlake batch ...`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conf.settings import Settings, load_settings
from jobs.spark_session import spark_submit_command
from streamlake.airflow_env import (
    AIRFLOW_HOME,
    CONN_ID,
    DEFAULT_RETRIES,
    JOBS_DIR,
    PY_FILES,
    airflow_environment,
    dag_config,
    spark_submit_options,
)
from tests.airflow_support import FORBIDDEN_IN_DAGS, airflow_env, inspect_dags

RUN_ID = "manual__2026-01-02T03:04:05.678901+00:00"
SAFE_RUN_ID = "manual__2026-01-02T03-04-05.678901-00-00"
REFRESH = "refresh_sql_tables"


def _case(dag_id: str, task_id: str, **context) -> dict:
    return {"dag_id": dag_id, "task_id": task_id, "context": {"run_id": RUN_ID, "params": {}, **context}}


CASES = [
    _case("streamlake_daily", "silver_user_events", ds="2025-04-02"),
    _case("streamlake_daily", "gold_orders", ds="2025-04-02"),
    _case("streamlake_daily", "ops_summary", ds="2025-04-02"),
    _case("streamlake_replay", "resolve", params={"dataset": "orders", "from_offsets": {"0": 5, "1": 0}, "to_offsets": {"0": 9, "1": 3},
                                                  "from_time": None, "to_time": None, "partitions": None}),
    _case("streamlake_replay", "resolve", params={"dataset": "orders", "from_offsets": None, "to_offsets": None, "partitions": "0,2",
                                                  "from_time": "2026-01-01T00:00:00Z", "to_time": "2026-01-01T06:00:00Z"}),
    _case("streamlake_replay", "replay", params={"dataset": "orders"}),
    _case("streamlake_replay", "rebuild", params={"dataset": "orders"}),
    _case("streamlake_backfill", "rebuild", params={"dataset": "user_events", "from": "2025-04-01", "to": "2025-04-03"}),
    _case("streamlake_dlq_inspect", "inspect_orders", data_interval_start="2025-04-02T00:00:00+00:00"),
    _case("streamlake_dlq_redrive", "redrive", params={"dataset": "orders", "reason": "contract_violation", "dry_run": True}),
    _case("streamlake_dlq_redrive", "redrive", params={"dataset": "orders", "reason": "contract_violation", "dry_run": False}),
    _case("streamlake_ops_summary", "ops_summary", ds="2025-04-02"),
]


@pytest.fixture(scope="module")
def local_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def parsed(local_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return inspect_dags(airflow_env(local_settings, tmp_path_factory.mktemp("airflow_home"), PY_FILES), CASES)


def _job_line(rendered: dict) -> list[str]:
    """The job file's name and the job's own arguments, from a spark-submit command."""
    command = rendered["command"]
    application = next(i for i, part in enumerate(command) if part.startswith(f"{JOBS_DIR}/"))
    return [Path(command[application]).name, *command[application + 1:]]


def test_the_dag_folder_parses_without_errors_into_the_expected_dags(parsed: dict) -> None:
    assert parsed["import_errors"] == {}
    assert sorted(parsed["dags"]) == ["streamlake_backfill", "streamlake_daily", "streamlake_dlq_inspect", "streamlake_dlq_redrive",
                                      "streamlake_ops_summary", "streamlake_replay"]
    schedules = {dag_id: (dag["schedule"], dag["catchup"]) for dag_id, dag in parsed["dags"].items()}
    assert schedules == {"streamlake_daily": ("@daily", False), "streamlake_dlq_inspect": ("@daily", False),
                         "streamlake_ops_summary": ("@daily", False), "streamlake_replay": (None, False),
                         "streamlake_backfill": (None, False), "streamlake_dlq_redrive": (None, False)}
    assert all(dag["has_doc"] and "streamlake" in dag["tags"] for dag in parsed["dags"].values())


def test_the_dag_files_import_no_project_code_and_no_spark(parsed: dict) -> None:
    assert parsed["modules"] == [], f"the DAG folder imported {parsed['modules']} (none of {FORBIDDEN_IN_DAGS} may be)"


def test_every_task_is_a_spark_submit_of_a_job_file_with_retries(parsed: dict) -> None:
    tasks = [task for dag in parsed["dags"].values() for task_id, task in dag["tasks"].items() if task_id != REFRESH]
    assert tasks and all(task["is_spark_submit"] and task["retries"] == DEFAULT_RETRIES for task in tasks)
    assert {Path(task["application"]).parent for task in tasks} == {JOBS_DIR}
    assert all(Path(task["application"]).is_file() or Path(task["application"]).stem == "ops_summary" for task in tasks)
    assert {task["py_files"] for task in tasks} == {str(PY_FILES)}


def test_daily_runs_silver_then_gold_per_dataset_then_one_ops_summary(parsed: dict) -> None:
    daily = parsed["dags"]["streamlake_daily"]
    assert (daily["tags"], daily["max_active_runs"]) == (["batch", "streamlake"], 1)
    order = {task_id: (task["upstream"], task["downstream"]) for task_id, task in daily["tasks"].items()}
    assert order == {
        "silver_orders": ([], ["gold_orders"]), "gold_orders": (["silver_orders"], ["ops_summary", REFRESH]),
        "silver_user_events": ([], ["gold_user_events"]), "gold_user_events": (["silver_user_events"], ["ops_summary", REFRESH]),
        "ops_summary": (["gold_orders", "gold_user_events"], []), REFRESH: (["gold_orders", "gold_user_events"], []),
    }
    assert daily["tasks"]["ops_summary"]["trigger_rule"] == "all_success"  # a failed Gold fails the run, not just its branch


def test_replay_resolves_then_replays_then_rebuilds(parsed: dict) -> None:
    replay = parsed["dags"]["streamlake_replay"]
    order = {task_id: (task["upstream"], task["downstream"]) for task_id, task in replay["tasks"].items()}
    assert order == {"resolve": ([], ["replay"]), "replay": (["resolve"], ["rebuild"]), "rebuild": (["replay"], [REFRESH]),
                     REFRESH: (["rebuild"], [])}
    assert replay["params"] == ["dataset", "from_offsets", "from_time", "partitions", "to_offsets", "to_time"]
    assert parsed["dags"]["streamlake_backfill"]["params"] == ["dataset", "from", "to"]
    assert parsed["dags"]["streamlake_dlq_redrive"]["params"] == ["dataset", "dry_run", "reason"]
    assert sorted(parsed["dags"]["streamlake_dlq_inspect"]["tasks"]) == ["inspect_orders", "inspect_user_events"]


def test_the_dags_that_publish_end_by_refreshing_the_sql_servers_tables(parsed: dict, local_settings: Settings) -> None:
    refreshing = {dag_id: dag["tasks"][REFRESH] for dag_id, dag in parsed["dags"].items() if REFRESH in dag["tasks"]}
    assert sorted(refreshing) == ["streamlake_backfill", "streamlake_daily", "streamlake_replay"]
    assert parsed["dags"]["streamlake_backfill"]["tasks"]["rebuild"]["downstream"] == [REFRESH]
    expected_env = dag_config(local_settings)["env_vars"]
    for task in refreshing.values():
        assert task["bash_command"] == shlex.join([str(Path(sys.executable).parent / "streamlake"), "serve", "--refresh"])
        assert (task["env"], task["append_env"], task["downstream"], task["retries"]) == (expected_env, True, [], DEFAULT_RETRIES)
        assert task["trigger_rule"] == "all_success"  # nothing new to serve when a Gold failed


def test_each_task_renders_its_jobs_command_line(parsed: dict) -> None:
    assert [_job_line(rendered) for rendered in parsed["rendered"]] == [
        ["silver_batch.py", "--dataset", "user_events", "--date", "2025-04-02"],
        ["gold_batch.py", "--dataset", "orders", "--silver-dates", "2025-04-02"],
        ["ops_summary.py", "--date", "2025-04-02"],
        ["replay_batch.py", "--dataset", "orders", "--resolve-only", "--replay-id", SAFE_RUN_ID,
         "--from-offsets", '{"0": 5, "1": 0}', "--to-offsets", '{"0": 9, "1": 3}'],
        ["replay_batch.py", "--dataset", "orders", "--resolve-only", "--replay-id", SAFE_RUN_ID,
         "--from-time", "2026-01-01T00:00:00Z", "--to-time", "2026-01-01T06:00:00Z", "--partitions", "0,2"],
        ["replay_batch.py", "--dataset", "orders", "--replay-id", SAFE_RUN_ID, "--no-rebuild"],
        ["rebuild_batch.py", "--dataset", "orders", "--replay-id", SAFE_RUN_ID],
        ["rebuild_batch.py", "--dataset", "user_events", "--from", "2025-04-01", "--to", "2025-04-03"],
        ["dlq_inspect.py", "--dataset", "orders", "--since", "2025-04-02T00:00:00+00:00"],
        ["dlq_redrive.py", "--dataset", "orders", "--reason", "contract_violation", "--dry-run"],
        ["dlq_redrive.py", "--dataset", "orders", "--reason", "contract_violation"],
        ["ops_summary.py", "--date", "2025-04-02"],
    ]


def test_a_task_submits_what_streamlake_batch_submits(parsed: dict, local_settings: Settings) -> None:
    """The same master, jars, driver memory and Spark conf as the CLI's spark-submit, plus the
    project as py_files; nothing typed twice."""
    rendered = parsed["rendered"][0]
    command = rendered["command"]
    cli = spark_submit_command(local_settings, JOBS_DIR / "silver_batch.py", "--dataset", "user_events", "--date", "2025-04-02")

    def options(parts: list[str]) -> tuple[dict[str, str], set[str]]:
        flags, confs = {}, set()
        for flag, value in zip(parts, parts[1:], strict=False):
            if flag == "--conf":
                confs.add(value)
            elif flag.startswith("--") and flag not in ("--dataset", "--date"):
                flags[flag] = value
        return flags, confs

    task_flags, task_confs = options(command)
    cli_flags, cli_confs = options(cli)
    assert command[:3] == ["spark-submit", "--master", "local[2]"]
    assert task_confs == cli_confs
    assert task_flags == {**cli_flags, "--py-files": str(PY_FILES), "--name": "streamlake-silver_batch"}
    assert command[-5:] == cli[-5:]
    # spark-submit is found on the jobs' PATH and runs with the project's Spark and interpreter.
    env = rendered["env"]
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert (env["SPARK_HOME"], env["PYSPARK_PYTHON"]) == (dag_config(local_settings)["env_vars"]["SPARK_HOME"], sys.executable)


def test_the_jobs_build_their_session_from_what_the_task_submits(local_settings: Settings) -> None:
    """The jobs import the project from py_files: every setting whose default is a path next to
    the code is pinned, as are the master and the conf, so a job cannot drift from its command."""
    env = dag_config(local_settings)["env_vars"]
    assert env["STREAMLAKE_LAKEHOUSE__ROOT"] == local_settings.lakehouse.root
    assert env["STREAMLAKE_JVM__JARS_DIR"] == str(local_settings.jvm.jars_dir)
    assert env["STREAMLAKE_STREAMS__HEARTBEAT_DIR"] == str(local_settings.streams.heartbeat_dir)
    assert Path(env["STREAMLAKE_CONF_DIR"], "local.yaml").is_file()
    assert env["STREAMLAKE_SPARK__MASTER"] == "local[2]"
    assert json.loads(env["STREAMLAKE_SPARK__CONF"]) == spark_submit_options(local_settings)["conf"]


def test_a_cluster_master_is_configuration_only(tmp_path: Path) -> None:
    cluster = load_settings(spark={"master": "spark://127.0.0.1:7077"})
    assert json.loads(airflow_environment(cluster)[f"AIRFLOW_CONN_{CONN_ID.upper()}"]) == {
        "conn_type": "spark", "host": "spark://127.0.0.1:7077"}
    parsed = inspect_dags(airflow_env(cluster, tmp_path / "airflow_home", PY_FILES), CASES[:1])
    (rendered,) = parsed["rendered"]
    command = rendered["command"]
    assert command[:3] == ["spark-submit", "--master", "spark://127.0.0.1:7077"]
    # The project reaches the executors only as py_files, once; they run the cluster's interpreter.
    assert command.count("--py-files") == 1 and command[command.index("--py-files") + 1] == str(PY_FILES)
    assert command[command.index("--jars") + 1] == ",".join(str(j) for j in cluster.jvm.spark_jars)
    assert f"spark.pyspark.python={cluster.spark.executor_python}" in command
    assert f"spark.pyspark.driver.python={sys.executable}" in command
    # Local-only settings stay local: a cluster's executors may lack this machine's daemon and paths.
    assert not [part for part in command if "python.daemon" in part or "driver.host" in part]
    assert rendered["env"]["STREAMLAKE_SPARK__MASTER"] == "spark://127.0.0.1:7077"


def _print_env(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`streamlake airflow --print-env` with no AIRFLOW*/STREAMLAKE_* variables but `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMLAKE_"))}
    return subprocess.run([str(Path(sys.executable).parent / "streamlake"), "airflow", "--print-env", *args],
                          env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_streamlake_airflow_prints_the_environment_it_starts_airflow_with(monkeypatch: pytest.MonkeyPatch) -> None:
    done = _print_env("--port", "8095")
    assert done.returncode == 0, done.stderr[-3000:]
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in done.stdout.splitlines())
    for key in [k for k in os.environ if k.startswith("STREAMLAKE_")]:  # the settings the command saw: none of ours
        monkeypatch.delenv(key)
    assert exported == airflow_environment(load_settings(), port=8095)
    assert (exported["AIRFLOW_HOME"], exported["AIRFLOW__API__BASE_URL"]) == (str(AIRFLOW_HOME), "http://127.0.0.1:8095")


def test_streamlake_airflow_without_jars_exits_2_naming_the_setting(tmp_path: Path) -> None:
    done = _print_env(STREAMLAKE_JVM__JARS_DIR=str(tmp_path))
    assert done.returncode == 2 and f"jvm.jars_dir: no Spark jars under {tmp_path / 'spark'}; run `make jars`" in done.stderr, done.stderr
