"""`streamlake serve`: one real Thrift server over a small hand-made lakehouse, queried with beeline and PyHive."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conf.settings import load_settings
from jobs.lakehouse_io import delta_version
from streamlake.airflow_env import serve_refresh_command
from tests.serving_support import beeline, beeline_rows, pyhive_cursor, pyhive_rows, running_thrift_server, state

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
TABLES = {
    "bronze/user_events": ("event_id string, event_type string", [("e1", "login"), ("e2", "purchase")]),
    "silver/user_events": ("event_id string, event_date date", [("e1", D1), ("e2", D2)]),
    "silver/orders_current": ("order_id string, status string", [("o1", "paid")]),
    "quarantine/orders": ("order_id string, rule string", [("o9", "negative_amount")]),
    "gold/revenue_daily": ("event_date date, currency string, revenue double, orders bigint",
                           [(D1, "EUR", 10.5, 1), (D2, "EUR", 20.25, 2), (D2, "USD", 7.0, 1), (D3, "EUR", 1.5, 1)]),
    "gold/daily_active_users": ("event_date date, dau_count bigint", [(D1, 3), (D2, 5), (D3, 4)]),
    "realtime/orders_per_minute_by_status": ("window_start timestamp, status string, orders bigint",
                                             [(dt.datetime(2026, 1, 2, 10, 0), "paid", 4), (dt.datetime(2026, 1, 2, 10, 1), "paid", 6)]),
    # Operators' internals are not served.
    "_ops/batch_runs": ("run_id string", [("r1",)]),
}
SERVED = sorted(path.replace("/", ".") for path in TABLES if not path.startswith("_"))
BI_QUERY = (
    "SELECT r.event_date, r.currency, r.revenue, d.dau_count FROM gold.revenue_daily r "
    "JOIN gold.daily_active_users d ON r.event_date = d.event_date "
    "WHERE r.event_date BETWEEN DATE'2026-01-02' AND DATE'2026-01-03' ORDER BY r.event_date, r.currency"
)
BI_ROWS = [(D2, "EUR", 20.25, 5), (D2, "USD", 7.0, 5), (D3, "EUR", 1.5, 4)]
REFUSED = {
    "DROP TABLE gold.revenue_daily": "DROP TABLE",
    "INSERT INTO gold.revenue_daily VALUES (DATE'2026-01-09', 'EUR', 1.0, 1)": "INSERT",
    "DELETE FROM gold.revenue_daily WHERE currency = 'USD'": "DELETE",
    "UPDATE gold.revenue_daily SET revenue = 0": "UPDATE",
    "MERGE INTO gold.revenue_daily t USING gold.revenue_daily s ON t.event_date = s.event_date WHEN MATCHED THEN DELETE": "MERGE INTO",
    "CREATE TABLE gold.copy USING DELTA AS SELECT * FROM gold.revenue_daily": "CREATE",
    "SET spark.streamlake.serve.readOnly=false": "SET of spark.streamlake.serve.readOnly",
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, spark) -> Path:
    root = tmp_path_factory.mktemp("serving-lake")
    for path, (schema, rows) in TABLES.items():
        spark.createDataFrame(rows, schema).write.format("delta").save(f"{root}/{path}")
    return root


@pytest.fixture(scope="module")
def server(lake: Path, settings_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    with running_thrift_server({**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": lake.as_uri()}, tmp_path_factory.mktemp("serve")) as srv:
        yield srv


def test_every_lakehouse_table_is_registered_in_its_layer(server):
    listed = sorted(f"{db}.{row[1]}" for db in ("bronze", "silver", "gold", "realtime", "quarantine")
                    for row in pyhive_rows(server, f"SHOW TABLES IN {db}"))
    assert listed == SERVED
    assert state(server)["tables"] == SERVED


def test_pyhive_and_beeline_read_what_the_delta_tables_hold(server, lake, spark):
    expected = sorted(tuple(r) for r in spark.read.format("delta").load(f"{lake}/silver/orders_current").collect())
    assert pyhive_rows(server, "SELECT order_id, status FROM silver.orders_current ORDER BY order_id") == expected == [("o1", "paid")]
    assert beeline_rows(server, "SELECT order_id, status FROM silver.orders_current ORDER BY order_id") == [["o1", "paid"]]
    bronze_rows = pyhive_rows(server, "SELECT event_id, event_type FROM bronze.user_events ORDER BY event_id")
    assert bronze_rows == [("e1", "login"), ("e2", "purchase")]


def test_a_bi_query_over_two_gold_tables_returns_the_hand_computed_rows(server):
    rows = pyhive_rows(server, BI_QUERY)
    assert [(dt.date.fromisoformat(d), c, r, n) for d, c, r, n in rows] == BI_ROWS
    assert beeline_rows(server, BI_QUERY) == [["2026-01-02", "EUR", "20.25", "5"], ["2026-01-02", "USD", "7.0", "5"],
                                              ["2026-01-03", "EUR", "1.5", "4"]]


def test_a_realtime_metrics_query_through_both_clients_equals_the_delta_table(server, lake, spark):
    sql = "SELECT status, SUM(orders) AS orders FROM realtime.orders_per_minute_by_status GROUP BY status ORDER BY status"
    metric_df = spark.read.format("delta").load(f"{lake}/realtime/orders_per_minute_by_status")
    expected = [tuple(r) for r in metric_df.groupBy("status").agg(F.sum("orders")).orderBy("status").collect()]
    assert pyhive_rows(server, sql) == expected == [("paid", 10)]
    assert beeline_rows(server, sql) == [["paid", "10"]]


@pytest.mark.parametrize("sql", list(REFUSED))
def test_writes_ddl_and_switching_the_guard_off_are_refused_by_both_clients(server, lake, spark, sql):
    table = f"{lake}/gold/revenue_daily"
    version = delta_version(spark, table)
    message = f"StreamLake serving is read-only: {REFUSED[sql]}"
    cursor = pyhive_cursor(server)
    with pytest.raises(Exception, match=message):
        cursor.execute(sql)
    result = beeline(server, sql)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert delta_version(spark, table) == version
    assert pyhive_rows(server, "SELECT COUNT(*) FROM gold.revenue_daily") == [(4,)]
    assert not (lake / "gold" / "copy").exists()


def test_a_table_created_after_start_is_served_after_the_dags_refresh_command(server, lake, spark):
    spark.createDataFrame([("u1", 2)], "user_id string, logins bigint").write.format("delta").save(f"{lake}/gold/logins_by_user")
    refresh = subprocess.run(serve_refresh_command(), env=server.env, capture_output=True, text=True, timeout=300)
    assert refresh.returncode == 0, refresh.stderr
    assert "new: gold.logins_by_user" in refresh.stdout
    assert pyhive_rows(server, "SELECT user_id, logins FROM gold.logins_by_user") == [("u1", 2)]


def test_refresh_with_no_server_running_says_so_and_exits_0(tmp_path, settings_env):
    env = {**settings_env, "STREAMLAKE_SERVE__STATE_FILE": str(tmp_path / "none.json")}
    result = subprocess.run([str(Path(sys.executable).parent / "streamlake"), "serve", "--refresh"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "no SQL server running" in result.stdout


def test_refresh_never_signals_a_pid_recorded_on_another_machine(tmp_path, settings_env):
    stranger = subprocess.Popen(["sleep", "120"])  # SIGHUP would end it
    try:
        state_file = tmp_path / "server.json"
        state_file.write_text(json.dumps({"pid": stranger.pid, "machine": f"not-{socket.gethostname()}", "registered_at": "x"}))
        env = {**settings_env, "STREAMLAKE_SERVE__STATE_FILE": str(state_file)}
        result = subprocess.run(serve_refresh_command(), env=env, capture_output=True, text=True, timeout=60)
        assert (result.returncode, stranger.poll()) == (0, None)
        assert "no SQL server running on this machine" in result.stdout
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize(("key", "value", "named"), [
    ("STREAMLAKE_SERVE__PORT", "0", "serve.port"),
    ("STREAMLAKE_SERVE__AUTHENTICATION", "password", "serve.password_file"),
    ("STREAMLAKE_SERVE__METASTORE_URI", "mysql://db", "serve.metastore_uri"),
])
def test_bad_serve_settings_exit_2_naming_the_key(settings_env, key, value, named):
    result = subprocess.run([str(Path(sys.executable).parent / "streamlake"), "serve"], env={**settings_env, key: value},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert named in result.stderr


def test_settings_default_to_loopback_read_only_and_no_authentication():
    serve = load_settings().serve
    assert (serve.host, serve.read_only, serve.authentication) == ("127.0.0.1", True, "none")
