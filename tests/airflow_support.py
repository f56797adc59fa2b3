"""Airflow for the tests: the environment of an Airflow process (a temporary AIRFLOW_HOME, the
dags/ folder, the Spark connection, the jobs' settings), Airflow's own CLI run in a process group
that is always stopped, the outcome of a `dags test` run read from its metadata DB, and the DAG
files inspected in a fresh interpreter.

Run as a script (`python tests/airflow_support.py CASES_JSON`), it is that fresh interpreter: it
imports Airflow and the DAG folder only (project code is imported lazily by the helpers, never at
the top of this file), so the modules it reports are the ones the DAG files pulled in.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).parent / "airflow")
THIS_FILE = Path(__file__).resolve()
# Modules a DAG file must never load: the project's packages and the heavy libraries the jobs use.
FORBIDDEN_IN_DAGS = ("contracts", "conf", "pipelines", "jobs", "streamlake", "ingest_api", "pyspark", "delta",
                     "great_expectations", "confluent_kafka")


def airflow_env(settings: Any, home: Path, py_files: Path, base: dict[str, str] | None = None, **options: Any) -> dict[str, str]:
    """`base` (default: this process's environment) without its own AIRFLOW* variables, plus what
    `streamlake airflow` prepares for `settings`, with Airflow's home at `home`."""
    from streamlake.airflow_env import airflow_environment

    env = {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("AIRFLOW")}
    env.update(airflow_environment(settings, home=home, py_files=py_files, **options))
    return env


@dataclass(frozen=True)
class AirflowRun:
    returncode: int
    output: str  # stdout and stderr, interleaved as written


def run_airflow(env: dict[str, str], *args: str, timeout_s: float = 900) -> AirflowRun:
    """`airflow <args>`; its whole process group (spark-submit, the JVM, Python workers) is killed
    when it ends or times out, so nothing it started outlives the test."""
    process = subprocess.Popen([AIRFLOW, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        raise AssertionError(f"`airflow {' '.join(args)}` did not end within {timeout_s}s; its output ends:\n{output[-5000:]}") from None
    finally:
        _kill_group(process)
    return AirflowRun(process.returncode, output)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait()


def migrate(env: dict[str, str]) -> None:
    run = run_airflow(env, "db", "migrate", timeout_s=300)
    assert run.returncode == 0, f"airflow db migrate failed:\n{run.output[-5000:]}"


def dags_test(env: dict[str, str], dag_id: str, logical_date: str, *, conf: dict | None = None,
              mark_success: str | None = None, timeout_s: float = 1200) -> AirflowRun:
    """`airflow dags test`: one DAG run, its tasks run one after the other in this process group."""
    args = ["dags", "test", dag_id, logical_date]
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    if mark_success is not None:
        args += ["--mark-success-pattern", mark_success]
    return run_airflow(env, *args, timeout_s=timeout_s)


@dataclass(frozen=True)
class DagRunOutcome:
    state: str
    tasks: dict[str, str | None]  # task id -> state


def last_run(home: Path, dag_id: str) -> DagRunOutcome:
    """The DAG's latest run and its task states, read from the SQLite metadata DB (no CLI start-up)."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
        tasks = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)).fetchall())
    return DagRunOutcome(state, tasks)


def task_lines(output: str, marker: str) -> list[str]:
    """Lines of a `dags test` output holding `marker` that the Spark hook logged (the job's output)."""
    return [line for line in output.splitlines() if marker in line and "SparkSubmitHook" in line]


# -- the DAG folder, inspected in a fresh interpreter -------------------------------------------


def inspect_dags(env: dict[str, str], cases: list[dict] | None = None) -> dict:
    """The DAG folder as Airflow parses it, in a fresh interpreter with `env`: import errors, every
    DAG and task, the modules loaded, and for each case (`dag_id`, `task_id`, a template `context`)
    the task's arguments rendered and the spark-submit command its hook builds."""
    done = subprocess.run([sys.executable, str(THIS_FILE), json.dumps(cases or [])], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"inspecting the DAG folder failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def _describe_task(task: Any) -> dict:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return {
        "is_spark_submit": isinstance(task, SparkSubmitOperator),
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "retries": task.retries,
        "trigger_rule": getattr(task.trigger_rule, "value", task.trigger_rule),
        "application": getattr(task, "application", None),
        "py_files": getattr(task, "py_files", None),
        "bash_command": getattr(task, "bash_command", None),
        "env": getattr(task, "env", None) if not isinstance(task, SparkSubmitOperator) else None,
        "append_env": getattr(task, "append_env", None),
    }


def _render(dag: Any, task_id: str, context: dict) -> dict:
    import copy

    task = copy.deepcopy(dag.task_dict[task_id])  # rendering overwrites the templates it renders
    context = {**context, "dag": dag, "task": task}
    if "data_interval_start" in context:
        context["data_interval_start"] = datetime.fromisoformat(context["data_interval_start"])
    task.render_template_fields(context, dag.get_template_env())
    hook = task._get_hook()
    return {"args": task.application_args, "command": hook._build_spark_submit_command(task.application),
            "env": hook._env}


def _main(cases: list[dict]) -> None:
    import logging

    from airflow.dag_processing.dagbag import BundleDagBag

    logging.disable(logging.CRITICAL)  # stdout carries the JSON answer only
    dags_dir = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = BundleDagBag(dags_dir, bundle_path=dags_dir, bundle_name="dags-folder")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN_IN_DAGS)
    dags = {
        dag_id: {
            "tags": sorted(dag.tags), "schedule": str(dag.schedule) if dag.schedule else None, "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs, "has_doc": bool(dag.doc_md), "params": sorted(dag.params.keys()),
            "tasks": {task.task_id: _describe_task(task) for task in dag.tasks},
        }
        for dag_id, dag in bag.dags.items()
    }
    rendered = [_render(bag.dags[case["dag_id"]], case["task_id"], case["context"]) for case in cases]
    print(json.dumps({"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "modules": loaded,
                      "dags": dags, "rendered": rendered}, default=str))


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
