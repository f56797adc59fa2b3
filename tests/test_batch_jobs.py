"""The batch jobs over Bronze ingested on dates of the test's choosing (written directly, with the
Kafka timestamps it needs): Silver's result does not depend on the order its dates run in; the
jobs as `streamlake batch ...` (spark-submit) exit 0, 1 and 2 as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from contracts.user_events import UserEventV1
from jobs.gold_batch import run_gold
from jobs.silver_batch import main as silver_main
from jobs.silver_batch import run_silver
from tests.bronze_support import KafkaRecord, write_bronze

USER_EVENTS = get_contract("user_events")
D1, D2 = date(2025, 4, 1), date(2025, 4, 2)
STREAMLAKE = str(Path(sys.executable).parent / "streamlake")


def _event(n: int, user_id: int, event_type: str, at: str) -> UserEventV1:
    return UserEventV1(event_id=UUID(int=1000 + n), user_id=user_id, event_type=event_type, page="/",
                       event_timestamp=datetime.fromisoformat(at).replace(tzinfo=UTC), source="web")


def _records() -> list[KafkaRecord]:
    """Ingested on D1 and D2 (Kafka timestamps). A2 is sent on both days: the D1 copy is the earlier."""
    a1, a2 = _event(1, 7, "login", "2025-04-01T08:00:00"), _event(2, 7, "purchase", "2025-04-01T08:05:00")
    b1, b2 = _event(3, 8, "login", "2025-04-02T09:00:00"), _event(4, 8, "click", "2025-04-02T09:01:00")

    def record(event: UserEventV1, offset: int, day: date) -> KafkaRecord:
        key, value, _ = wrap(USER_EVENTS, event, "tests", received_at=datetime(2025, 4, 2, 12, tzinfo=UTC))
        return KafkaRecord(key, value, 0, offset, datetime(day.year, day.month, day.day, 12))

    return [record(a1, 0, D1), record(a2, 1, D1), record(b1, 2, D2), record(a2, 3, D2), record(b2, 4, D2)]


def _lake(folder: Path) -> Settings:
    return load_settings(lakehouse={"root": (folder / "lake").as_uri()})


def _silver(spark: SparkSession, settings: Settings) -> list:
    df = spark.read.format("delta").load(settings.lakehouse.table_uri("silver", "user_events"))
    return sorted(df.drop("silver_run_id").collect(), key=repr)


def _gold(spark: SparkSession, settings: Settings, name: str) -> list:
    return sorted(spark.read.format("delta").load(settings.lakehouse.table_uri("gold", name)).drop("updated_at").collect(), key=repr)


def test_silver_is_the_same_whichever_order_its_dates_run_in(spark: SparkSession, tmp_path: Path) -> None:
    in_order, backwards = _lake(tmp_path / "in_order"), _lake(tmp_path / "backwards")
    records = _records()
    for settings in (in_order, backwards):
        write_bronze(spark, settings, USER_EVENTS, records)
    forward = [run_silver(spark, in_order, "user_events", day) for day in (D1, D2)]
    reverse = [run_silver(spark, backwards, "user_events", day) for day in (D2, D1, D2)]

    assert _silver(spark, in_order) == _silver(spark, backwards)
    kept = [r for r in _silver(spark, backwards) if r.event_id == str(UUID(int=1002))]
    assert [(r.ingestion_date, r.kafka_offset) for r in kept] == [(D1, 1)]  # the earlier copy, in both
    assert [r.details["duplicates_in_silver"] for r in forward] == [0, 1]
    # Backwards, D2 kept the later copy first; D1 then replaced it with its own, and D2 again dropped its.
    assert [(r.details["inserted"], r.details["replaced"], r.details["duplicates_in_silver"]) for r in reverse] == [
        (3, 0, 0), (1, 1, 0), (0, 0, 3)
    ]
    for settings in (in_order, backwards):
        run_gold(spark, settings, "user_events", [D1, D2])
    assert _gold(spark, in_order, "conversion_rate_daily") == _gold(spark, backwards, "conversion_rate_daily")
    assert [(r.event_date, r.dau_count, r.purchasing_users) for r in _gold(spark, in_order, "conversion_rate_daily")] == [
        (D1, 1, 1), (D2, 1, 0)
    ]


def _cli(settings: Settings, settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`streamlake batch ...`; its output holds both streams (spark-submit passes the job's log,
    written to its stderr, on to its own stdout)."""
    env = {**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": settings.lakehouse.root}
    return subprocess.run([STREAMLAKE, "batch", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def _unknown_version(bronze_df: DataFrame) -> DataFrame:
    """Bronze rows of a schema version newer than the Silver job (Bronze deployed first)."""
    return bronze_df.withColumn("schema_version", F.lit("v2"))


def test_batch_commands_exit_0_1_2_and_say_why(spark: SparkSession, settings_env: dict[str, str], tmp_path: Path) -> None:
    settings = _lake(tmp_path)
    write_bronze(spark, settings, USER_EVENTS, _records())
    run_silver(spark, settings, "user_events", D1)

    ok_file = tmp_path / "gold.json"
    ok = _cli(settings, settings_env, "gold", "--dataset", "user_events", "--dates", f"{D2},{D1}", "--result-file", str(ok_file))
    assert ok.returncode == 0, ok.stdout[-3000:]
    (run,) = json.loads(ok_file.read_text())["runs"]
    assert (run["success"], run["dates"], run["rows_out"]["daily_active_users"]) == (True, [str(D1), str(D2)], 1)
    assert '"gold run published"' in ok.stdout

    write_bronze(spark, settings, USER_EVENTS, [KafkaRecord(r.key, r.value, 1, r.offset, r.timestamp) for r in _records()],
                 change=_unknown_version)
    silver_version_before = spark.sql(f"DESCRIBE HISTORY delta.`{settings.lakehouse.table_uri('silver', 'user_events')}`").count()
    failed_file = tmp_path / "silver.json"
    failed = _cli(settings, settings_env, "silver", "--dataset", "user_events", "--from", str(D1), "--to", str(D2),
                  "--result-file", str(failed_file))
    assert failed.returncode == 1, failed.stdout[-3000:]
    assert '"check": "schema_version_known"' in failed.stdout and '"silver job failed"' in failed.stdout
    (failed_run,) = json.loads(failed_file.read_text())["runs"]  # D1 failed; D2 was never started
    assert (failed_run["success"], failed_run["failed_by_rule"]) == (False, {"schema_version_known": 2})
    assert spark.sql(f"DESCRIBE HISTORY delta.`{settings.lakehouse.table_uri('silver', 'user_events')}`").count() == silver_version_before



def test_a_bad_argument_exits_2_naming_it_before_spark_starts(settings_env: dict[str, str], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    settings = _lake(tmp_path)
    for args, named in ((["silver", "--dataset", "user_events", "--date", "2025-13-01"], "argument --date: not a date"),
                        (["silver", "--dataset", "user_events", "--from", str(D1)], "--from and --to go together"),
                        (["gold", "--dataset", "user_events", "--from", str(D2), "--to", str(D1)], f"--from {D2} is after --to {D1}"),
                        (["gold", "--dataset", "user_events", "--dates", "2025-04-01,yesterday"], "argument --dates: not a date"),
                        (["gold", "--dataset", "nope", "--dates", str(D1)], "unknown dataset 'nope'")):
        bad = _cli(settings, settings_env, *args)
        assert bad.returncode == 2 and named in bad.stdout and "Spark" not in bad.stdout, (args, bad.stdout[-2000:])
    # The job itself, as spark-submit runs it, refuses the same way before it builds a session.
    with pytest.raises(SystemExit) as exited:
        silver_main(["--dataset", "user_events", "--date", "2025-04-01", "--to", str(D2)])
    assert exited.value.code == 2 and "--from and --to go together" in capsys.readouterr().err


def test_gold_for_no_dates_rebuilds_and_creates_nothing(spark: SparkSession, tmp_path: Path) -> None:
    """A Silver run that touched no date hands Gold an empty list: a no-op, not an error."""
    result = run_gold(spark, _lake(tmp_path), "user_events", [])
    assert (result.success, result.dates) == (True, [])
    assert not (tmp_path / "lake").exists()
