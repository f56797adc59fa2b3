"""StreamLake's Spark jobs as Airflow tasks: one SparkSubmitOperator per job run, and the SQL server's
refresh after a DAG has published.

Everything a task submits comes from STREAMLAKE_AIRFLOW, the JSON `streamlake airflow` prepares
(`streamlake/airflow_env.py`): the jobs folder, the project as py_files, the jars, the Spark conf
and the jobs' environment, the datasets, retries. The master is the Spark connection's
(AIRFLOW_CONN_STREAMLAKE_SPARK). This module and the DAG files import Airflow, the Spark provider and
the standard library only: the DAG processor parses them over and over, and the project's code runs
in the jobs, never here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator

CONFIG_VAR = "STREAMLAKE_AIRFLOW"
CONFIG_KEYS = frozenset({"conn_id", "jobs_dir", "py_files", "jars", "driver_memory", "spark_conf", "env_vars", "datasets",
                         "serve_refresh_command", "retries", "retry_delay_s"})
# Before every date a test or backfill names; catchup is off, so the scheduler starts from today.
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)
OWNER = "streamlake"


def load_config() -> dict[str, Any]:
    raw = os.environ.get(CONFIG_VAR)
    if not raw:
        raise RuntimeError(f"{CONFIG_VAR} is not set: start Airflow with `streamlake airflow` (make airflow), "
                           "or export what `streamlake airflow --print-env` prints")
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise RuntimeError(f"{CONFIG_VAR} is not JSON: {exc}") from None
    missing = sorted(CONFIG_KEYS - config.keys())
    if missing:
        raise RuntimeError(f"{CONFIG_VAR} lacks {', '.join(missing)}; prepare it again with `streamlake airflow --print-env`")
    return config


CONFIG = load_config()
DATASETS: list[str] = CONFIG["datasets"]


def default_args() -> dict[str, Any]:
    return {"owner": OWNER, "retries": CONFIG["retries"], "retry_delay": timedelta(seconds=CONFIG["retry_delay_s"])}


def job_id(text: str) -> str:
    """A run id as the jobs accept one: letters, digits, `.`, `_`, `-`, starting with a letter or digit."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", text).lstrip("._-")[:200]


def job_arg(value: Any) -> str:
    """A param as a job argument: an object as JSON, a list comma-separated, nothing as ''."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# For a DAG's `user_defined_filters`: `{{ run_id | job_id }}`, `{{ params.from_offsets | job_arg }}`.
JINJA_FILTERS = {"job_id": job_id, "job_arg": job_arg}


class StreamLakeJob(SparkSubmitOperator):
    """`spark-submit jobs/<job>.py <arguments>` with StreamLake's Spark setup.

    `optional_args` (flag -> templated value) are passed only when the value renders non-empty, and
    `flags` (flag -> templated condition) only when the condition renders `True`: a job refuses an
    empty value, and a list of arguments cannot leave one out by itself.
    """

    template_fields: Sequence[str] = (*SparkSubmitOperator.template_fields, "optional_args", "flags")

    def __init__(
        self, *, job: str, arguments: Sequence[str], optional_args: dict[str, str] | None = None,
        flags: dict[str, str] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(
            application=f"{CONFIG['jobs_dir']}/{job}.py",
            application_args=list(arguments),
            conn_id=CONFIG["conn_id"],
            conf=dict(CONFIG["spark_conf"]),
            jars=CONFIG["jars"],
            py_files=CONFIG["py_files"],
            driver_memory=CONFIG["driver_memory"],
            env_vars=dict(CONFIG["env_vars"]),
            name=f"streamlake-{job}",
            **kwargs,
        )
        self.optional_args = dict(optional_args or {})
        self.flags = dict(flags or {})

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # Appended once rendered, so the task's rendered arguments show the command line as run.
        extra = [part for flag, value in self.optional_args.items() if value != "" for part in (flag, value)]
        extra += [flag for flag, condition in self.flags.items() if condition == "True"]
        self.application_args = [*self.application_args, *extra]


def refresh_sql_tables() -> BashOperator:
    """`streamlake serve --refresh`, the last task of a DAG that publishes: the SQL server running on
    this machine registers the tables just created. With none running here it succeeds and says so;
    a server elsewhere registers them within its `serve.refresh_interval_s`."""
    return BashOperator(task_id="refresh_sql_tables", bash_command=CONFIG["serve_refresh_command"], env=dict(CONFIG["env_vars"]),
                        append_env=True)
