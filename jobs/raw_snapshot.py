"""Bounded copy of a dataset's raw topic into a Delta table, parsed with the contract schema.

Used by `make demo` to show the Kafka -> Spark -> Delta round trip. Overwrites its table, so it
always holds exactly what the topic holds. Run: spark-submit jobs/raw_snapshot.py --dataset orders
"""

from __future__ import annotations

import argparse
import logging

from pyspark.sql import SparkSession

from conf.logging import configure_logging
from conf.settings import Settings, load_settings
from contracts.registry import get_contract
from contracts.spark_schema import envelope_schema
from jobs.lakehouse_io import overwrite_delta, read_kafka_batch
from jobs.spark_session import build_spark_session
from pipelines.kafka_records import select_envelope_columns, with_decoded_record, with_parsed_envelope

log = logging.getLogger(__name__)


def snapshot_raw_topic(spark: SparkSession, settings: Settings, dataset: str) -> str:
    """Copy the whole raw topic of `dataset` into `<lakehouse>/raw_snapshot/<dataset>`; return the path."""
    contract = get_contract(dataset)
    path = settings.lakehouse.table_uri("raw_snapshot", dataset)
    snapshot_df = (
        read_kafka_batch(spark, settings, contract.raw_topic)
        .transform(with_decoded_record)
        .transform(with_parsed_envelope, envelope_schema(contract))
        .transform(select_envelope_columns)
    )
    overwrite_delta(snapshot_df, path)
    log.info("raw snapshot written", extra={"dataset": dataset, "topic": contract.raw_topic, "path": path})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    configure_logging()
    settings = load_settings(args.env)
    get_contract(args.dataset)
    spark = build_spark_session(settings, f"streamlake-raw-snapshot-{args.dataset}")
    try:
        snapshot_raw_topic(spark, settings, args.dataset)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
