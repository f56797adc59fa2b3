"""The DAGs run for real: `airflow dags test` (Airflow's own CLI, a SQLite metadata DB migrated once
for this module, tasks calling spark-submit through the Spark provider) over Bronze rows the test
lands in a fresh lakehouse. A day publishes exactly its Silver and Gold rows and the ops summary; an
empty day succeeds with nothing to do; a failed audit fails its task and the run, and the task log
holds the job's own error line. A replay run resolves, replays and rebuilds, restoring lost Bronze
rows once.

Retries are off here (the DAGs' default is `DEFAULT_RETRIES`): `dags test` waits out a retry's
delay, and a failure must show at once."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import LakehouseSettings, Settings
from contracts.envelope import wrap
from contracts.orders import OrderV1
from contracts.registry import get_contract
from contracts.user_events import UserEventV1
from streamlake.airflow_env import build_py_files
from streamlake.topics import apply_topics, declared_topics
from tests.airflow_support import DagRunOutcome, airflow_env, dags_test, last_run, migrate, task_lines
from tests.bronze_support import KafkaRecord, produce_raw, write_bronze
from tests.factories import order_event
from tests.replay_support import bronze_available_now, copies, lose_ingestion_date, offsets_range, order

USER_EVENTS, ORDERS = get_contract("user_events"), get_contract("orders")
DAY = date(2025, 4, 2)
DAY_BEFORE = DAY - timedelta(days=1)
DAILY = "streamlake_daily"
DAILY_TASKS = ("silver_orders", "gold_orders", "silver_user_events", "gold_user_events", "ops_summary", "refresh_sql_tables")
NO_SQL_SERVER = "no SQL server running on this machine"


class Airflow:
    """One AIRFLOW_HOME and metadata DB for the module; each test brings its own lakehouse."""

    def __init__(self, home: Path, py_files: Path, base_env: dict[str, str]) -> None:
        self.home, self.py_files, self.base_env = home, py_files, base_env

    def env(self, settings: Settings) -> dict[str, str]:
        # A state file of its own, so the refresh task never signals a developer's running server.
        base = {**self.base_env, "STREAMLAKE_SERVE__STATE_FILE": str(self.home / "serve.json")}
        return airflow_env(settings, self.home, self.py_files, base=base, retries=0, retry_delay_s=1)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, settings: Settings, settings_env: dict[str, str]) -> Airflow:
    # Built from the working tree, so the jobs run the code under test, never a stale `make dist`.
    py_files = build_py_files(tmp_path_factory.mktemp("dist") / "streamlake.zip")
    runner = Airflow(tmp_path_factory.mktemp("airflow_home"), py_files, settings_env)
    migrate(runner.env(settings))
    return runner


def _lake(settings: Settings, folder: Path) -> Settings:
    """The session's broker (the ops summary reads Kafka) and a lakehouse of the test's own."""
    return settings.model_copy(update={"lakehouse": LakehouseSettings(root=(folder / "lake").as_uri())})


def _ingested(contract, events: list, day: date) -> list[KafkaRecord]:
    """The events in order at offsets 0.. of partition 0, all ingested (Kafka timestamp) on `day`."""
    records = []
    for offset, event in enumerate(events):
        key, value, _ = wrap(contract, event, "tests", received_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
        records.append(KafkaRecord(key, value, 0, offset, datetime(day.year, day.month, day.day, 12)))
    return records


def _user_event(n: int, user_id: int, event_type: str, at: str) -> UserEventV1:
    return UserEventV1(event_id=UUID(int=n), user_id=user_id, event_type=event_type, page="/",
                       event_timestamp=datetime.fromisoformat(at).replace(tzinfo=UTC), source="web")


def _user_events() -> list[KafkaRecord]:
    """User 7 logs in and buys, user 8 clicks, user 9's login arrives late (an event of the day
    before); the purchase is sent twice."""
    purchase = _user_event(2, 7, "purchase", "2025-04-02T08:05:00")
    return _ingested(USER_EVENTS, [_user_event(1, 7, "login", "2025-04-02T08:00:00"), purchase,
                                   _user_event(3, 8, "click", "2025-04-02T09:00:00"),
                                   _user_event(4, 9, "login", "2025-04-01T23:50:00"), purchase], DAY)


def _orders() -> list[KafkaRecord]:
    def order(order_id: str, status: str, amount: str, at: str) -> OrderV1:
        items = [{"sku": "SKU-1", "quantity": 1, "unit_price": amount}]  # the amount must match its items (a Silver rule)
        return OrderV1.model_validate_json(json.dumps(order_event(order_id, status=status, amount=amount, items=items, event_timestamp=at)))

    paid, failed = order("O-1", "paid", "12.00", "2025-04-02T10:00:00Z"), order("O-2", "failed", "5.00", "2025-04-02T11:00:00Z")
    return _ingested(ORDERS, [paid, failed], DAY)


def _rows(spark: SparkSession, settings: Settings, layer: str, name: str, *columns: str) -> list[tuple]:
    df = spark.read.format("delta").load(settings.lakehouse.table_uri(layer, name))
    return sorted(tuple(row) for row in df.select(*columns).collect())


def _unknown_version(bronze_df: DataFrame) -> DataFrame:
    """Bronze rows of a schema version newer than the Silver job (Bronze deployed first)."""
    return bronze_df.withColumn("schema_version", F.lit("v2"))


def test_daily_publishes_its_days_silver_and_gold_then_the_ops_summary(
    airflow: Airflow, settings: Settings, spark: SparkSession, tmp_path: Path,
) -> None:
    lake = _lake(settings, tmp_path)
    write_bronze(spark, lake, USER_EVENTS, _user_events())
    write_bronze(spark, lake, ORDERS, _orders())

    run = dags_test(airflow.env(lake), DAILY, str(DAY))

    assert run.returncode == 0, run.output[-8000:]
    assert last_run(airflow.home, DAILY) == DagRunOutcome("success", dict.fromkeys(DAILY_TASKS, "success"))
    assert _rows(spark, lake, "silver", "user_events", "event_id", "user_id", "event_type", "event_date", "kafka_offset") == [
        (str(UUID(int=1)), 7, "login", DAY, 0), (str(UUID(int=2)), 7, "purchase", DAY, 1),
        (str(UUID(int=3)), 8, "click", DAY, 2), (str(UUID(int=4)), 9, "login", DAY_BEFORE, 3),
    ]
    # Gold rebuilt both event dates the day's Silver run touched, the late login's too.
    assert _rows(spark, lake, "gold", "conversion_rate_daily", "event_date", "dau_count", "purchasing_users", "conversion_rate") == [
        (DAY_BEFORE, 1, 0, 0.0), (DAY, 2, 1, 0.5),
    ]
    assert _rows(spark, lake, "silver", "orders", "order_id", "status", "event_date") == [("O-1", "paid", DAY), ("O-2", "failed", DAY)]
    assert _rows(spark, lake, "gold", "order_failure_rate_daily", "event_date", "failed_orders", "paid_orders", "failure_rate") == [
        (DAY, 1, 1, 0.5)]
    assert [(r[0], r[1], str(r[2]), r[3]) for r in _rows(spark, lake, "gold", "revenue_daily", "event_date", "currency", "revenue",
                                                        "orders")] == [(DAY, "EUR", "12.00", 1)]
    assert NO_SQL_SERVER in run.output, run.output[-8000:]  # the refresh ran, with no server to ask
    report = Path(tmp_path / "lake" / "_ops" / "reports" / str(DAY) / "ops_summary.json")
    assert report.is_file(), f"no ops summary at {report}"
    assert json.loads(report.read_text())["date"] == str(DAY)


def test_an_empty_day_succeeds_with_nothing_to_do(airflow: Airflow, settings: Settings, spark: SparkSession, tmp_path: Path) -> None:
    lake = _lake(settings, tmp_path)
    write_bronze(spark, lake, USER_EVENTS, _user_events())  # all ingested on DAY, none on the day after

    # Only user_events runs: orders and the summary are marked done, which spares three Spark jobs.
    run = dags_test(airflow.env(lake), DAILY, str(DAY + timedelta(days=1)), mark_success="silver_orders|gold_orders|ops_summary")

    assert run.returncode == 0, run.output[-8000:]
    assert last_run(airflow.home, DAILY) == DagRunOutcome("success", dict.fromkeys(DAILY_TASKS, "success"))
    assert task_lines(run.output, '"gold run: no dates to rebuild"'), run.output[-8000:]
    assert _rows(spark, lake, "silver", "user_events", "event_id") == []


def test_a_failed_audit_fails_its_task_and_the_run_with_the_jobs_error_in_the_task_log(
    airflow: Airflow, settings: Settings, spark: SparkSession, tmp_path: Path,
) -> None:
    lake = _lake(settings, tmp_path)
    write_bronze(spark, lake, USER_EVENTS, _user_events(), change=_unknown_version)

    run = dags_test(airflow.env(lake), DAILY, str(DAY), mark_success="silver_orders|gold_orders")

    assert run.returncode != 0 and "DagRun failed" in run.output, run.output[-8000:]
    assert last_run(airflow.home, DAILY) == DagRunOutcome("failed", {
        "silver_orders": "success", "gold_orders": "success", "silver_user_events": "failed",
        "gold_user_events": "upstream_failed", "ops_summary": "upstream_failed", "refresh_sql_tables": "upstream_failed",
    })
    [job_error] = task_lines(run.output, '"silver job failed"')
    assert '"dataset": "user_events"' in job_error and "schema_version_known" in job_error, job_error
    assert task_lines(run.output, '"check": "schema_version_known"'), run.output[-8000:]
    # The task's failure itself ends with the job's last lines, so the error is where the UI shows it.
    failure = run.output[run.output.index("Last spark-submit output:"):]
    assert '"silver job failed"' in failure[:20000]
    assert not (tmp_path / "lake" / "silver" / "user_events").exists()  # a failed audit publishes nothing


def test_a_replay_run_resolves_replays_and_rebuilds_what_the_range_restored(
    airflow: Airflow, settings: Settings, spark: SparkSession, tmp_path: Path,
) -> None:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    lake = _lake(settings, tmp_path)
    produced = produce_raw(lake, ORDERS.raw_topic, [order("O-DAG-1", "7.00"), order("O-DAG-2", "3.50", 2)])
    bronze_available_now(spark, lake)
    lose_ingestion_date(spark, lake, datetime.now(UTC).date())
    from_offsets, to_offsets = offsets_range(produced)

    run = dags_test(airflow.env(lake), "streamlake_replay", str(DAY),
                    conf={"dataset": "orders", "from_offsets": json.loads(from_offsets), "to_offsets": json.loads(to_offsets)})

    assert run.returncode == 0, run.output[-8000:]
    outcome = last_run(airflow.home, "streamlake_replay")
    assert outcome == DagRunOutcome("success", {"resolve": "success", "replay": "success", "rebuild": "success",
                                                "refresh_sql_tables": "success"})
    landed = copies(spark, lake, produced)
    [replay_id] = {replay for found in landed.values() for replay in found}
    assert landed == {(p.partition, p.offset): [replay_id] for p in produced}  # each restored once, by the run's replay
    assert _rows(spark, lake, "silver", "orders", "order_id", "amount") == [("O-DAG-1", Decimal("7.00")), ("O-DAG-2", Decimal("7.00"))]
    assert _rows(spark, lake, "gold", "revenue_daily", "event_date", "currency", "revenue", "orders") == [
        (date(2024, 7, 15), "EUR", Decimal("14.00"), 2)]
