"""The SQL server's driver: a Spark session with Hive support over the lakehouse, its Delta tables
registered as `<layer>.<name>`, and Spark's Thrift server (HiveThriftServer2) started in it.

Run by `streamlake serve` through spark-submit (same conf, jars and master as every job). It logs
"thrift server ready" once clients can connect, writes the state file (`serve.state_file`) and then
stays in the foreground: SIGHUP, `streamlake serve --refresh` and every `serve.refresh_interval_s`
register tables created since; SIGTERM/SIGINT stop the server and remove the state file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from conf.logging import configure_logging
from conf.settings import ConfigError, Settings, load_settings
from jobs.lakehouse_io import _hadoop_path
from jobs.serving_catalog import SERVED_LAYERS, TableFolder, plan_registration
from jobs.spark_session import DELTA_EXTENSION, spark_conf

log = logging.getLogger("streamlake.serve")

READ_ONLY_KEY = "spark.streamlake.serve.readOnly"
GUARD_EXTENSION = "io.streamlake.serving.ReadOnlyExtension"
PASSWORD_PROVIDER = "io.streamlake.serving.PasswordAuthenticator"
PASSWORD_FILE_PROPERTY = "streamlake.serve.passwordFile"


def serving_conf(settings: Settings) -> dict[str, str]:
    """What the server adds to `spark_conf`: Hive catalog, metastore, Thrift bind, guard, authentication."""
    serve = settings.serve
    conf = {
        "spark.sql.extensions": f"{DELTA_EXTENSION},{GUARD_EXTENSION}",
        "spark.sql.catalogImplementation": "hive",
        READ_ONLY_KEY: str(serve.read_only).lower(),
        "spark.hive.server2.thrift.bind.host": serve.host,
        "spark.hive.server2.thrift.port": str(serve.port),
        "spark.hive.server2.transport.mode": "binary",
        # Every client gets its own session (and so the guard's default), never the driver's.
        "spark.sql.hive.thriftServer.singleSession": "false",
    }
    if serve.metastore_uri:
        conf["spark.hadoop.hive.metastore.uris"] = serve.metastore_uri
    else:
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={serve.metastore_dir / 'metastore_db'};create=true"
        )
    if serve.authentication == "password":
        if serve.password_file is None:
            raise ConfigError("serve.password_file: required when serve.authentication is 'password'")
        if not serve.password_file.is_file():
            # Every login would be refused; users are made with `streamlake serve-user NAME --password-file PATH`.
            raise ConfigError(f"serve.password_file: no file at {serve.password_file} (make it with streamlake serve-user)")
        conf["spark.hive.server2.authentication"] = "CUSTOM"
        conf["spark.hive.server2.custom.authentication.class"] = PASSWORD_PROVIDER
    elif serve.authentication == "ldap":
        if not serve.ldap_url:
            raise ConfigError("serve.ldap_url: required when serve.authentication is 'ldap'")
        conf["spark.hive.server2.authentication"] = "LDAP"
        conf["spark.hive.server2.authentication.ldap.url"] = serve.ldap_url
        if serve.ldap_base_dn:
            conf["spark.hive.server2.authentication.ldap.baseDN"] = serve.ldap_base_dn
    else:
        conf["spark.hive.server2.authentication"] = "NONE"
    conf.update({f"spark.hive.{key.removeprefix('hive.')}": value for key, value in serve.hiveconf.items()})
    return conf


def login_provider_properties(conf: dict[str, str]) -> dict[str, str]:
    """The authentication keys of `serving_conf` under Hive's own names, to be set as JVM system
    properties: Hive builds each login's provider (CUSTOM's class, LDAP's URL and base DN) from a
    new HiveConf, which reads system properties but never the Spark session's `spark.hive.*`."""
    prefixes = ("spark.hive.server2.authentication.", "spark.hive.server2.custom.authentication.")
    return {key.removeprefix("spark."): value for key, value in conf.items() if key.startswith(prefixes)}


def _normalised(spark: SparkSession, uri: str) -> str:
    return str(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri).toUri().toString()).rstrip("/")


def list_table_folders(spark: SparkSession, root: str) -> list[TableFolder]:
    """Delta folders under each served layer, listed through Hadoop's file systems (file://, gs://)."""
    folders = []
    for layer in SERVED_LAYERS:
        path, fs = _hadoop_path(spark, f"{root}/{layer}")
        if not fs.exists(path):
            continue
        for status in fs.listStatus(path):
            name = status.getPath().getName()
            if status.isDirectory() and fs.exists(status.getPath().suffix("/_delta_log")):
                folders.append(TableFolder(layer, name, _normalised(spark, f"{root}/{layer}/{name}")))
    return folders


def registered_locations(spark: SparkSession) -> dict[str, str]:
    catalog = spark._jsparkSession.sharedState().externalCatalog()
    locations = {}
    for layer in SERVED_LAYERS:
        if not catalog.databaseExists(layer):
            continue
        for table in [row.tableName for row in spark.sql(f"SHOW TABLES IN {layer}").collect() if not row.isTemporary]:
            location = catalog.getTable(layer, table).storage().locationUri()
            if location.isDefined():
                locations[f"{layer}.{table}".lower()] = _normalised(spark, location.get().toString())
    return locations


def register_tables(spark: SparkSession, settings: Settings) -> dict[str, list[str]]:
    """One registration pass, idempotent; runs in the driver's root session, where the guard is off."""
    plan = plan_registration(list_table_folders(spark, settings.lakehouse.root), registered_locations(spark))
    for statement in plan.statements:
        spark.sql(statement)
    tables = sorted(plan.created + plan.repointed + plan.unchanged)
    log.info("tables registered", extra={"tables_created": plan.created, "repointed": plan.repointed,
                                          "skipped": plan.skipped, "tables": tables})
    return {"created": plan.created, "repointed": plan.repointed, "skipped": plan.skipped, "tables": tables}


def _write_state(settings: Settings, state: dict) -> None:
    path = settings.serve.state_file
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(state, indent=2))
    staged.replace(path)  # atomic: a reader never sees half a file


def _wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host if host != "0.0.0.0" else "127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the Thrift server did not listen on {host}:{port} within {timeout_s:.0f} s (serve.port in use?)")


def build_serving_session(settings: Settings) -> SparkSession:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("streamlake-serve").master(settings.spark.master)
    for key, value in {**spark_conf(settings), **serving_conf(settings)}.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    return spark


def serve(settings: Settings) -> int:
    serve_settings = settings.serve
    if serve_settings.metastore_uri is None:
        serve_settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    spark = build_serving_session(settings)
    jvm = spark.sparkContext._jvm
    if serve_settings.password_file is not None:
        jvm.java.lang.System.setProperty(PASSWORD_FILE_PROPERTY, str(serve_settings.password_file.resolve()))
    for key, value in login_provider_properties(serving_conf(settings)).items():
        jvm.java.lang.System.setProperty(key, value)
    # The root session registers tables; Thrift clients get new sessions, which keep the guard on.
    spark.conf.set(READ_ONLY_KEY, "false")
    wake = threading.Event()
    stop = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: wake.set())
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), wake.set()))
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), wake.set()))
    registered = register_tables(spark, settings)
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(spark._jsparkSession.sqlContext())
    # The machine is recorded so a refresh elsewhere (another container, a shared volume) never signals a stranger's pid.
    state = {"pid": os.getpid(), "machine": socket.gethostname(), "host": serve_settings.host, "port": serve_settings.port}
    try:
        _wait_for_port(serve_settings.host, serve_settings.port, serve_settings.startup_timeout_s)
        state |= {"started_at": datetime.now(UTC).isoformat(), "registered_at": datetime.now(UTC).isoformat(), **registered}
        _write_state(settings, state)
        log.info("thrift server ready", extra={"host": serve_settings.host, "port": serve_settings.port,
                                               "read_only": serve_settings.read_only,
                                               "authentication": serve_settings.authentication,
                                               "tables": registered["tables"]})
        while not stop.is_set():
            wake.wait(serve_settings.refresh_interval_s)
            if stop.is_set():
                break
            wake.clear()
            try:
                registered = register_tables(spark, settings)
            except Exception as exc:  # noqa: BLE001 - a failing pass (storage hiccup) must not stop serving
                log.error("table registration failed", extra={"error": str(exc)})
                continue
            state |= {"registered_at": datetime.now(UTC).isoformat(), **registered}
            _write_state(settings, state)
    finally:
        settings.serve.state_file.unlink(missing_ok=True)
        log.info("thrift server stopping", extra={"host": serve_settings.host, "port": serve_settings.port})
        server.stop()
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Spark's Thrift SQL server over the lakehouse tables.")
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    configure_logging("INFO")
    try:
        settings = load_settings(args.env)
        serving_conf(settings)
    except ConfigError as exc:
        log.error("config error", extra={"error": str(exc)})
        return 2
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
