"""The one place a SparkSession (or a spark-submit command line) is configured.

Jobs and tests call `build_spark_session`; `spark_submit_command` gives the same configuration to
`spark-submit`. Jars come from the Maven-fetched cache (`make jars`), never from `--packages`, so a
set-up machine needs no network at run time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from conf.settings import PROJECT_DIR, VAR_DIR, ConfigError, Settings

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
PROJECT_DAEMON = "jobs.python_daemon"
# The packages a job imports, zipped for a cluster's executors (`make dist`).
PY_FILES = PROJECT_DIR / "dist" / "streamlake.zip"


def is_local_master(master: str) -> bool:
    """`local[...]` or `local-cluster[...]`: every task runs on this machine, in this environment."""
    return master.startswith("local")


def spark_jars(settings: Settings) -> list[Path]:
    jars = settings.jvm.spark_jars
    if not jars:
        raise ConfigError(f"jvm.jars_dir: no Spark jars under {settings.jvm.jars_dir / 'spark'}; run `make jars`")
    return jars


def gcs_conf(settings: Settings) -> dict[str, str]:
    """Hadoop's GCS connector and Delta's GCS log store, as `spark.hadoop.*` keys so every JVM gets them."""
    gcs = settings.gcs
    conf = {
        "spark.hadoop.fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        # Commits write NNN.json directly with an if-absent precondition; no rename is involved.
        "spark.delta.logStore.gs.impl": "io.delta.storage.GCSLogStore",
        "spark.hadoop.fs.gs.auth.type": "UNAUTHENTICATED" if gcs.auth == "none" else "APPLICATION_DEFAULT",
        "spark.hadoop.fs.gs.operation.move.enable": str(gcs.move_enabled).lower(),
    }
    if gcs.project_id:
        conf["spark.hadoop.fs.gs.project.id"] = gcs.project_id
    if gcs.endpoint:
        conf["spark.hadoop.fs.gs.storage.root.url"] = gcs.endpoint
    return conf


def parquet_conf(settings: Settings) -> dict[str, str]:
    """How every table's Parquet files are written: the codec and its level from the settings, and
    timestamps as 8-byte microseconds instead of Spark's legacy 12-byte INT96 (the same values to
    any reader, in less space: docs/bronze.md, "Storage")."""
    lakehouse = settings.lakehouse
    return {
        "spark.sql.parquet.compression.codec": lakehouse.parquet_compression,
        # parquet-mr's zstd codec reads its level from the Hadoop configuration of each write.
        "spark.hadoop.parquet.compression.codec.zstd.level": str(lakehouse.parquet_zstd_level),
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting StreamLake relies on; `settings.spark.conf` overrides any of them."""
    spark = settings.spark
    conf = {
        "spark.jars": ",".join(str(j) for j in spark_jars(settings)),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.default.parallelism": str(spark.shuffle_partitions),
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.driver.memory": spark.driver_memory,
        # Event times are UTC end to end; a machine's local zone must never leak into data.
        "spark.sql.session.timeZone": "UTC",
        # Keep Spark's side files (warehouse, Derby metastore) out of whatever folder we run in.
        "spark.sql.warehouse.dir": str(VAR_DIR / "spark-warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={VAR_DIR / 'derby'}",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.ui.showConsoleProgress": "false",
        **gcs_conf(settings),
        **parquet_conf(settings),
    }
    if is_local_master(spark.master):
        # A local driver talks only to itself: bind to loopback rather than guess a network address.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        # Python workers start from our daemon, which spares every task per-task costs
        # (`jobs.python_daemon`). Only where the project is installed for sure: a cluster's
        # executors may not have it, and keep Spark's own daemon unless `spark.conf` names ours.
        conf["spark.python.daemon.module"] = PROJECT_DAEMON
    conf.update(spark.conf)
    return conf


def build_spark_session(settings: Settings, app_name: str) -> SparkSession:
    if is_local_master(settings.spark.master):
        # Python workers (Bronze's contract checks run in them) need this interpreter, where the
        # project and its packages are installed; PySpark reads only the environment for it.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(settings.spark.master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.spark.log_level)
    return session


def spark_submit_env(base: dict[str, str]) -> dict[str, str]:
    """The environment spark-submit needs: the pinned pyspark as SPARK_HOME, this interpreter."""
    import pyspark

    return {
        **base,
        "SPARK_HOME": str(Path(pyspark.__file__).resolve().parent),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def cluster_submit_options(settings: Settings, conf: dict[str, str], py_files: Path = PY_FILES) -> list[str]:
    """What a non-local master adds: the project as `--py-files` (its executors need not have it
    installed) and their own interpreter. The driver stays here (client deploy mode), in this
    environment; it must advertise an address the workers reach (`spark.conf` spark.driver.host)."""
    if not py_files.is_file():
        raise ConfigError(f"spark.master: {settings.spark.master!r} runs Python tasks on executors that import the project from "
                          f"{py_files}, which does not exist; run `make dist`")
    conf.setdefault("spark.pyspark.python", settings.spark.executor_python)
    conf.setdefault("spark.pyspark.driver.python", sys.executable)
    return ["--py-files", str(py_files)]


def spark_submit_command(settings: Settings, application: Path, *args: str, py_files: Path = PY_FILES) -> list[str]:
    """`spark-submit` with the same configuration as `build_spark_session`; for a cluster master,
    with the project zipped at `py_files` for its executors."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    conf = spark_conf(settings)
    cluster_options = []
    if is_local_master(settings.spark.master):
        # The driver must run in this environment, where the project and its packages are installed.
        conf.setdefault("spark.pyspark.python", sys.executable)
        conf.setdefault("spark.pyspark.driver.python", sys.executable)
    else:
        cluster_options = cluster_submit_options(settings, conf, py_files)
    command = [str(spark_submit), "--master", settings.spark.master, *cluster_options, "--jars", conf.pop("spark.jars")]
    command += ["--driver-memory", conf.pop("spark.driver.memory")]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(application), *args]
