"""The Spark configuration every job and test shares: what changes with the master."""

from __future__ import annotations

from pathlib import Path

from conf.settings import load_settings
from jobs.spark_session import PROJECT_DAEMON, spark_conf, spark_submit_command

DAEMON = "spark.python.daemon.module"


def test_the_project_daemon_starts_the_python_workers_on_a_local_master() -> None:
    for master in ("local[2]", "local[*]", "local-cluster[2,1,1024]"):
        assert spark_conf(load_settings(spark={"master": master}))[DAEMON] == PROJECT_DAEMON, master


def test_a_cluster_master_keeps_sparks_own_daemon() -> None:
    # Its executors may not have the project installed: Spark's standard `pyspark.daemon` is used.
    for master in ("spark://10.0.0.5:7077", "yarn", "k8s://https://10.0.0.1:6443"):
        settings = load_settings(spark={"master": master})
        assert DAEMON not in spark_conf(settings), master
        assert not any(arg.startswith(f"{DAEMON}=") for arg in spark_submit_command(settings, Path("job.py"))), master


def test_a_cluster_whose_nodes_have_the_project_can_name_the_daemon_in_spark_conf() -> None:
    settings = load_settings(spark={"master": "spark://10.0.0.5:7077", "conf": {DAEMON: PROJECT_DAEMON}})
    assert spark_conf(settings)[DAEMON] == PROJECT_DAEMON
    assert f"{DAEMON}={PROJECT_DAEMON}" in spark_submit_command(settings, Path("job.py"))
