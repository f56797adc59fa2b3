"""The ops summary against a small real lakehouse, the real broker and Spark: every number in its JSON
equals the count taken directly (Delta tables, Kafka watermarks, the DLQ deduplicated by hand), the
HTML holds them and references nothing outside itself, and `streamlake ops summary` (spark-submit)
reads the Bronze stream's checkpoint, exits 0 and writes both files where it says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from contracts.envelope import wrap
from contracts.registry import DATASETS, get_contract
from contracts.user_events import UserEventV1
from jobs import ops_summary
from jobs.batch_run import RunResult
from jobs.bronze_stream import start_bronze_query
from jobs.dlq_redrive import PENDING, SENT
from jobs.gold_batch import run_gold
from jobs.kafka_offsets import watermarks
from jobs.ops_report_html import render_html
from jobs.ops_summary import build_summary, report_uri, write_report
from jobs.ops_tables import BATCH_RUNS, DLQ_REDRIVES, DLQ_REDRIVES_SCHEMA, QUALITY_EVENTS, ops_table_uri, record_run
from jobs.quality import RunFailedError
from jobs.silver_batch import run_silver
from pipelines.gold import GOLD_TABLES
from streamlake import synthetic
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import KafkaRecord, dlq_headers, produce_raw, read_topic, write_bronze
from tests.factories import envelope_value

USER_EVENTS, ORDERS = get_contract("user_events"), get_contract("orders")
DAY = date(2024, 2, 29)  # a date no other test's records carry, so the counts on it are this test's alone
NEXT_DAY, FAILED_DAY = DAY + timedelta(days=1), DAY + timedelta(days=2)
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")


@pytest.fixture(scope="module")
def topics(settings: Settings) -> None:
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))


def _lake(settings: Settings, folder: Path) -> Settings:
    """The session broker and a lakehouse of the test's own."""
    return load_settings(kafka={"bootstrap_servers": settings.kafka.bootstrap}, lakehouse={"root": (folder / "lake").as_uri()})


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour)


def _event(n: int, user_id: int, event_type: str, at: datetime) -> UserEventV1:
    return UserEventV1(event_id=UUID(int=5000 + n), user_id=user_id, event_type=event_type, page="/",
                       event_timestamp=at.replace(tzinfo=UTC), source="web")


def _land(spark: SparkSession, settings: Settings, events: list[tuple[UserEventV1, date]], change=None) -> None:
    """Produce the events to the raw topic (real coordinates), then land them in Bronze with the
    ingestion dates the test needs."""
    wrapped = [wrap(USER_EVENTS, event, "tests", received_at=datetime(2024, 3, 1, 12, tzinfo=UTC))[:2] for event, _ in events]
    produced = produce_raw(settings, USER_EVENTS.raw_topic, wrapped)
    records = [KafkaRecord(key, value, p.partition, p.offset, _at(day, 12))
               for (key, value), p, (_, day) in zip(wrapped, produced, events, strict=True)]
    write_bronze(spark, settings, USER_EVENTS, records, change=change)


def _unknown_version(bronze_df: DataFrame) -> DataFrame:
    return bronze_df.withColumn("schema_version", F.lit("v2"))


# The DLQ topic is the session's: these records name offsets no real raw record of the session has,
# or deduplication would pair them with another test's record of the same coordinates.
FABRICATED_OFFSETS = 10**12


def _dlq_record(error_class: str, partition: int, offset: int, source_at: datetime) -> tuple[bytes, bytes, list]:
    offset += FABRICATED_OFFSETS
    headers = {"dlq.error.class": error_class, "dlq.error.reason": "tests", "dlq.source.topic": USER_EVENTS.raw_topic,
               "dlq.source.partition": str(partition), "dlq.source.offset": str(offset),
               "dlq.source.timestamp": f"{source_at:%Y-%m-%dT%H:%M:%S}.000Z", "dlq.job": "tests"}
    return b"k", b"{bad", [(k, v.encode()) for k, v in headers.items()]


def _produce_dlq(settings: Settings, topic: str, records: list[tuple[bytes, bytes, list]]) -> None:
    producer = Producer(settings.kafka.producer_config(client_id="tests"))
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(60) == 0


def _dlq_by_hand(settings: Settings, topic: str, on_date: date) -> tuple[int, dict[str, int], dict[str, int]]:
    """Records read, and per reason the distinct source records on the date and in all."""
    messages = read_topic(settings, topic) if sum(w.high - w.low for w in watermarks(settings, topic).values()) else []
    distinct = {}
    for msg in messages:
        headers = dlq_headers(msg)
        distinct[(headers["dlq.source.topic"], headers["dlq.source.partition"], headers["dlq.source.offset"])] = headers
    total = Counter(h["dlq.error.class"] for h in distinct.values())
    on_day = Counter(h["dlq.error.class"] for h in distinct.values() if h["dlq.source.timestamp"].startswith(on_date.isoformat()))
    return len(messages), dict(total), dict(on_day)


def _delta_count(spark: SparkSession, path: str, date_column: str, on_date: date) -> tuple[int, int]:
    table_df = spark.read.format("delta").load(path)
    return table_df.where(F.col(date_column) == F.lit(on_date)).count(), table_df.count()


def _redrive_ledger(spark: SparkSession, settings: Settings) -> None:
    """The re-drive ledger as its writer declares it: one record sent on the date, one still pending
    from the day after."""
    def row(source_partition: int, source_offset: int, dlq_offset: int, state: str, recorded_at: datetime) -> tuple:
        sent = state == SENT
        return (f"rd-{dlq_offset}", "user_events", USER_EVENTS.raw_topic, source_partition, source_offset, USER_EVENTS.dlq_topic, 0,
                dlq_offset, "malformed_json", state, 0 if sent else None, 900 + dlq_offset if sent else None, recorded_at,
                recorded_at + timedelta(minutes=1) if sent else None)

    rows = [row(0, 100, 0, SENT, _at(DAY, 9)), row(1, 50, 3, PENDING, _at(NEXT_DAY, 9))]
    spark.createDataFrame(rows, DLQ_REDRIVES_SCHEMA).write.format("delta").save(ops_table_uri(settings, DLQ_REDRIVES))


def _layers(section: dict) -> dict[str, dict]:
    return {layer["table"]: layer for layer in section["layers"]}


def test_every_number_equals_the_direct_count_and_the_html_holds_them(
    spark: SparkSession, settings: Settings, topics, tmp_path: Path,
) -> None:
    lake = _lake(settings, tmp_path)
    _land(spark, lake, [
        (_event(1, 7, "login", _at(DAY, 8)), DAY),
        (_event(2, 7, "purchase", _at(DAY, 9)), DAY),
        # Future-dated against its receipt (2024-03-01 12:00): quarantined. Not far in the future: the
        # speed layer's tests read the same topic, and their watermark follows its latest event.
        (_event(3, 8, "click", datetime(2024, 3, 5)), DAY),
        (_event(4, 9, "login", _at(DAY, 23)), NEXT_DAY),  # late: its event date is DAY
    ])
    _land(spark, lake, [(_event(5, 10, "click", _at(FAILED_DAY, 8)), FAILED_DAY)], change=_unknown_version)
    silver_runs = [run_silver(spark, lake, "user_events", day) for day in (DAY, NEXT_DAY)]
    with pytest.raises(RunFailedError):
        run_silver(spark, lake, "user_events", FAILED_DAY)
    gold_run = run_gold(spark, lake, "user_events", [DAY])
    replay = RunResult("replay", "replay-user_events-tests", "user_events", [DAY], started_at=datetime(2024, 2, 29, tzinfo=UTC),
                       success=True, details={"inserted": 2, "event_dates_touched": [str(DAY)]})
    record_run(spark, lake, replay)
    _redrive_ledger(spark, lake)
    _produce_dlq(lake, USER_EVENTS.dlq_topic, [
        _dlq_record("malformed_json", 0, 100, _at(DAY, 1)),
        _dlq_record("malformed_json", 0, 100, _at(DAY, 1)),  # a retried batch sent it twice
        _dlq_record("oversized", 0, 101, _at(DAY, 2)),
        _dlq_record("malformed_json", 1, 50, _at(DAY - timedelta(days=1), 3)),
    ])

    summary = build_summary(spark, lake, DAY, runs=10)
    written = write_report(spark, lake, summary, str(tmp_path / "out"))

    section = summary["datasets"]["user_events"]
    layers = _layers(section)
    # Rows per layer: the report against Delta's own counts, and against what the test landed.
    expected_tables = [("bronze/user_events", "ingestion_date"), ("silver/user_events", "event_date"),
                       ("quarantine/user_events", "ingestion_date")]
    expected_tables += [(f"gold/{t.name}", "event_date") for t in GOLD_TABLES["user_events"]]
    assert [(t, layers[t]["date_column"]) for t, _ in expected_tables] == expected_tables
    for table, date_column in expected_tables:
        layer, name = table.split("/")
        direct = _delta_count(spark, lake.lakehouse.table_uri(layer, name), date_column, DAY)
        assert (layers[table]["exists"], layers[table]["rows_on_date"], layers[table]["rows_total"]) == (True, *direct), table
    assert [layers[t]["rows_on_date"] for t in ("bronze/user_events", "silver/user_events", "quarantine/user_events")] == [3, 3, 1]
    assert layers["bronze/user_events"]["rows_total"] == 5
    assert layers["gold/daily_active_users"]["rows_on_date"] == 1
    # A dataset with no tables yet: reported absent, not failed.
    assert all((layer["exists"], layer["rows_on_date"], layer["rows_total"]) == (False, None, None)
               for layer in summary["datasets"]["orders"]["layers"])

    # DLQ: one read of the topic, deduplicated on the source coordinates, by reason.
    dlq = section["dlq"]
    read, total, on_day = _dlq_by_hand(lake, USER_EVENTS.dlq_topic, DAY)
    assert (dlq["exists"], dlq["records_read"], dlq["records_total"], dlq["duplicates"]) == (True, read, sum(total.values()),
                                                                                            read - sum(total.values()))
    assert {r["error_class"]: r["records_total"] for r in dlq["by_reason"]} == total
    assert {r["error_class"]: r["records_on_date"] for r in dlq["by_reason"] if r["records_on_date"]} == on_day == {
        "malformed_json": 1, "oversized": 1}
    assert dlq["records_on_date"] == 2

    # Lag: no checkpoint here, so Bronze's last offset + 1 per partition, against Kafka's end offsets.
    bronze_df = spark.read.format("delta").load(lake.lakehouse.table_uri("bronze", "user_events"))
    last_offsets = bronze_df.groupBy("kafka_partition").agg(F.max("kafka_offset").alias("last")).collect()
    reached = {r.kafka_partition: r.last + 1 for r in last_offsets}
    held = watermarks(lake, USER_EVENTS.raw_topic)
    lag = section["lag"]
    assert (lag["exists"], lag["reached_from"]) == (True, "bronze")
    assert [(p["partition"], p["end_offset"], p["reached_offset"], p["lag"]) for p in lag["partitions"]] == [
        (p, held[p].high, reached.get(p), held[p].high - reached.get(p, held[p].low)) for p in sorted(held)]
    assert lag["total_lag"] == sum(p["lag"] for p in lag["partitions"])
    orders_held = watermarks(lake, ORDERS.raw_topic)
    assert summary["datasets"]["orders"]["lag"]["reached_from"] == "nothing"
    assert summary["datasets"]["orders"]["lag"]["total_lag"] == sum(w.high - w.low for w in orders_held.values())

    # Runs, latest first, with their checks as `_ops/quality_events` holds them.
    runs = section["runs"]
    quality_df = spark.read.format("delta").load(ops_table_uri(lake, QUALITY_EVENTS))
    runs_df = spark.read.format("delta").load(ops_table_uri(lake, BATCH_RUNS))
    assert [r["run_id"] for r in runs] == [r.run_id for r in runs_df.orderBy(F.col("started_at").desc()).collect()]
    assert len(runs) == 5
    for run in runs:
        checks = quality_df.where(F.col("run_id") == run["run_id"])
        assert (run["checks_passed"], run["checks_failed"]) == (checks.where("success").count(), checks.where("NOT success").count())
    by_id = {r["run_id"]: r for r in runs}
    (failed,) = [r for r in runs if not r["success"]]
    assert (failed["job"], failed["dates"], failed["is_for_date"]) == ("silver", [str(FAILED_DAY)], False)
    assert any(name.endswith(": schema_version_known") for name in failed["failed_checks"])
    assert by_id[silver_runs[0].run_id]["is_for_date"] and by_id[gold_run.run_id]["failed_checks"] == []

    assert section["replays"] == {"replays_total": 1, "replays_on_date": 1, "replays_failed": 0, "records_inserted": 2}
    assert section["redrives"] == {"ledger_exists": True, "records_total": 2, "records_on_date": 1, "by_state": [
        {"state": PENDING, "records_on_date": 0, "records_total": 1},
        {"state": SENT, "records_on_date": 1, "records_total": 1}]}
    assert summary["datasets"]["orders"]["redrives"]["records_total"] == 0

    # The files: in the lakehouse and in the output folder, the same JSON and HTML.
    lake_dir = Path(lake.lakehouse.root.removeprefix("file://"))
    json_file = lake_dir / "_ops" / "reports" / str(DAY) / "ops_summary.json"
    html_file = json_file.with_suffix(".html")
    assert written == [report_uri(lake, DAY, "json"), report_uri(lake, DAY, "html"),
                       str(tmp_path / "out" / "ops_summary.json"), str(tmp_path / "out" / "ops_summary.html")]
    assert json.loads(json_file.read_text()) == summary == json.loads((tmp_path / "out" / "ops_summary.json").read_text())
    page = html_file.read_text()
    assert page == (tmp_path / "out" / "ops_summary.html").read_text()
    assert '<td>bronze/user_events</td><td>ingestion_date</td><td class="num">3</td><td class="num">5</td>' in page
    assert '<td>oversized</td><td class="num">1</td>' in page and failed["run_id"] in page
    assert f'<td class="num">{lag["partitions"][0]["lag"]:,}</td></tr>' in page
    assert_self_contained(page)


def assert_self_contained(page: str) -> None:
    """Nothing fetched from outside: no script at all, every src/href an anchor within the page."""
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.IGNORECASE)
    assert references and all(ref.startswith("#") for ref in references), sorted(set(references))[:5]
    assert all(target.startswith("#") for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", page))  # clip paths within the chart
    assert page.count("<svg") >= 3 and "@import" not in page


def _summary(**lag: int) -> dict:
    """A small summary, as the job builds it, for the page alone."""
    layer = {"layer": "bronze", "table": "bronze/orders", "path": "file:///l/bronze/orders", "date_column": "ingestion_date",
             "exists": True, "rows_on_date": 1234, "rows_total": 5678}
    absent = {**layer, "layer": "silver", "table": "silver/orders", "date_column": "event_date", "exists": False,
              "rows_on_date": None, "rows_total": None}
    return {
        "report": "ops_summary", "date": "2024-02-29", "generated_at": "2024-03-01T06:00:00Z", "lakehouse": "file:///l", "runs_shown": 10,
        "datasets": {"orders": {
            "layers": [layer, absent],
            "dlq": {"topic": "streamlake.orders.dlq", "exists": True, "read_offsets": None, "records_read": 9, "records_total": 7,
                    "records_on_date": 3, "duplicates": 2, "by_reason": [
                        {"error_class": "malformed_json", "records_on_date": 2, "records_total": 5},
                        {"error_class": "<oversized>", "records_on_date": 1, "records_total": 2}]},
            "lag": {"topic": "streamlake.orders.raw", "exists": True, "reached_from": "checkpoint", "checkpoint": "file:///l/_checkpoints",
                    "total_lag": sum(lag.values()), "partitions": [
                        {"partition": int(p[1:]), "low_offset": 0, "end_offset": 40, "reached_offset": 40 - n, "lag": n}
                        for p, n in lag.items()]},
            "runs": [{"run_id": "silver-orders-1", "job": "silver", "dates": ["2024-02-29"], "success": False,
                      "started_at": "2024-03-01T01:00:00Z", "finished_at": "2024-03-01T01:01:00Z", "is_for_date": True,
                      "checks_passed": 11, "checks_failed": 1, "failed_checks": ["silver/orders: schema_version_known"]}],
            "replays": {"replays_total": 2, "replays_on_date": 1, "replays_failed": 0, "records_inserted": 17},
            "redrives": {"ledger_exists": False, "records_total": 0, "records_on_date": 0, "by_state": []},
        }},
    }


def test_the_page_is_a_pure_function_of_the_summary_and_escapes_what_it_shows() -> None:
    summary = _summary(p0=3, p1=0)
    page = render_html(summary)
    assert page == render_html(summary)  # the same summary, the same page, charts included
    assert '<td>bronze/orders</td><td>ingestion_date</td><td class="num">1,234</td><td class="num">5,678</td>' in page
    assert "<td>silver/orders</td><td>event_date</td><td>—</td><td>—</td>" in page  # absent, not zero
    assert "<td>&lt;oversized&gt;</td>" in page and "<oversized>" not in page
    assert '<tr class="failed">' in page and "silver/orders: schema_version_known" in page
    assert "total lag 3" in page and "no re-drive ledger" in page
    assert_self_contained(page)


def test_a_bad_date_exits_2_naming_it_before_spark_starts(settings_env: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        ops_summary.main(["--date", "2024-02-30"])
    assert exited.value.code == 2 and "argument --date: not a date (YYYY-MM-DD): '2024-02-30'" in capsys.readouterr().err
    bad = subprocess.run([STREAMLAKE, "ops", "summary", "--date", "yesterday"], env=settings_env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120)
    assert bad.returncode == 2 and "argument --date: not a date" in bad.stdout and "Spark" not in bad.stdout, bad.stdout[-2000:]


def test_streamlake_ops_summary_reads_the_bronze_checkpoint_and_writes_both_files(
    spark: SparkSession, settings: Settings, settings_env: dict[str, str], topics, tmp_path: Path,
) -> None:
    lake = _lake(settings, tmp_path)
    first, second, third, fourth, fifth = synthetic.orders(5, seed=404)
    produce_raw(lake, ORDERS.raw_topic, [envelope_value(ORDERS, e) for e in (first, second, third)] + [(b"O-bad", b"{not json")])
    reached = {p: w.high for p, w in watermarks(lake, ORDERS.raw_topic).items()}
    query = start_bronze_query(spark, lake, "orders", available_now=True)
    query.awaitTermination()
    assert query.exception() is None
    produce_raw(lake, ORDERS.raw_topic, [envelope_value(ORDERS, e) for e in (fourth, fifth)])  # not yet in Bronze: the lag
    end = {p: w.high for p, w in watermarks(lake, ORDERS.raw_topic).items()}
    today = datetime.now(UTC).date()

    out = tmp_path / "out"
    env = {**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": lake.lakehouse.root}
    done = subprocess.run([STREAMLAKE, "ops", "summary", "--output-dir", str(out)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]

    lake_report = Path(lake.lakehouse.root.removeprefix("file://")) / "_ops" / "reports" / str(today)
    for name in ("ops_summary.json", "ops_summary.html"):
        assert (lake_report / name).read_text() == (out / name).read_text()
        assert f"{lake.lakehouse.root}/_ops/reports/{today}/{name}" in done.stdout and str(out / name) in done.stdout
    summary = json.loads((out / "ops_summary.json").read_text())
    assert (summary["date"], sorted(summary["datasets"])) == (str(today), sorted(DATASETS))
    lag = summary["datasets"]["orders"]["lag"]
    assert (lag["reached_from"], lag["checkpoint"]) == ("checkpoint", lake.lakehouse.checkpoint_uri("bronze", "orders"))
    assert [(p["partition"], p["end_offset"], p["reached_offset"], p["lag"]) for p in lag["partitions"]] == [
        (p, end[p], reached[p], end[p] - reached[p]) for p in sorted(end)]
    assert lag["total_lag"] == 2
    bronze = _layers(summary["datasets"]["orders"])["bronze/orders"]
    assert (bronze["rows_on_date"], bronze["rows_total"]) == _delta_count(
        spark, lake.lakehouse.table_uri("bronze", "orders"), "ingestion_date", today)
    read, total, on_day = _dlq_by_hand(lake, ORDERS.dlq_topic, today)
    dlq = summary["datasets"]["orders"]["dlq"]
    assert (dlq["records_read"], dlq["records_total"], dlq["records_on_date"]) == (read, sum(total.values()), sum(on_day.values()))
    assert on_day.get("malformed_json", 0) >= 1  # the record Bronze just sent there
    assert f"ops summary for {today}" in done.stdout and '"message": "ops summary written"' in done.stdout
    assert_self_contained((out / "ops_summary.html").read_text())
