"""Helpers of the replay tests (and of the DAG run that replays): orders with a known event date,
the Bronze stream run to the end of the topic, Bronze's copies of given records, a lost date."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from contracts.envelope import wrap
from contracts.orders import OrderV1
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from tests.bronze_support import Produced
from tests.factories import order_event

ORDERS = get_contract("orders")


def order(order_id: str, unit_price: str, quantity: int = 1, items: int = 1) -> tuple[bytes, bytes]:
    amount = Decimal(unit_price) * quantity * items
    event = OrderV1.model_validate_json(json.dumps(order_event(
        order_id=order_id, amount=str(amount), event_timestamp="2024-07-15T10:00:00Z",
        items=[{"sku": f"SKU-{n:03d}", "quantity": quantity, "unit_price": unit_price} for n in range(items)],
    )))
    key, value, _ = wrap(ORDERS, event, "tests")
    return key, value


def bronze_available_now(spark: SparkSession, settings: Settings) -> None:
    query = start_bronze_query(spark, settings, "orders", available_now=True)
    query.awaitTermination()
    assert query.exception() is None


def bronze_table(settings: Settings) -> str:
    return settings.lakehouse.table_uri("bronze", "orders")


def copies(spark: SparkSession, settings: Settings, produced: list[Produced]) -> dict[tuple[int, int], list]:
    """Bronze's rows for these records, by coordinates (a record twice would show two)."""
    wanted = " OR ".join(f"(kafka_partition = {p.partition} AND kafka_offset = {p.offset})" for p in produced)
    rows = spark.read.format("delta").load(bronze_table(settings)).where(wanted).collect()
    found: dict[tuple[int, int], list] = {(p.partition, p.offset): [] for p in produced}
    for row in rows:
        found[(row.kafka_partition, row.kafka_offset)].append(row.bronze_replay_id)
    return found


def lose_ingestion_date(spark: SparkSession, settings: Settings, day: date) -> int:
    """Remove one ingestion date's rows from Bronze, as a lost partition would (this lakehouse is a
    test's copy: append-only is lifted for the deletion only). Returns the rows removed."""
    table = f"delta.`{bronze_table(settings)}`"
    lost = spark.read.format("delta").load(bronze_table(settings)).where(F.col("ingestion_date") == F.lit(day)).count()
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.appendOnly' = 'false')")
    spark.sql(f"DELETE FROM {table} WHERE ingestion_date = DATE'{day}'")
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.appendOnly' = 'true')")
    return lost


def offsets_range(produced: list[Produced]) -> tuple[str, str]:
    start, end = {}, {}
    for p in produced:
        start[p.partition] = min(start.get(p.partition, p.offset), p.offset)
        end[p.partition] = max(end.get(p.partition, 0), p.offset + 1)
    return json.dumps({str(k): v for k, v in start.items()}), json.dumps({str(k): v for k, v in end.items()})
