"""Bronze streaming: `streamlake.<dataset>.raw` -> Bronze Delta (exactly once) + DLQ topic.

    spark-submit jobs/bronze_stream.py --dataset user_events [--env local]
    streamlake stream bronze --dataset user_events        (the same, through spark-submit)

Each micro-batch is one pass: the Delta write's own tasks classify every record (`pipelines.bronze`),
send the invalid ones, bytes untouched, to `streamlake.<dataset>.dlq` and wait for their acks
(`jobs.bronze_dlq`), and write the valid ones; Delta then appends them to
`<lakehouse>/bronze/<dataset>` with its idempotent writes (txnAppId from settings, txnVersion =
batch id). The batch completes only when both are safe, and only then does the checkpoint advance.
Exit status (`jobs.entrypoint`): 0 after a clean stop, 1 when the query fails (e.g. the store
stayed down), 2 for a configuration error.
"""

from __future__ import annotations

import logging
import sys
import time

from pyspark import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from conf.settings import Settings
from contracts.registry import DatasetContract, get_contract
from jobs.bronze_dlq import DlqTarget, TallyParam, valid_rows_after_dlq
from jobs.bronze_table import create_bronze_table
from jobs.entrypoint import run_streaming_job
from jobs.lakehouse_io import (
    append_delta_idempotent,
    check_checkpoint_matches_table,
    delta_version,
    kafka_source_options,
    with_retries,
)
from pipelines.bronze import BRONZE_PARTITION_COLUMNS, to_bronze_rows
from pipelines.bronze_verdict import empty_tally

JOB = "bronze"
log = logging.getLogger("streamlake.bronze")


class BronzeBatchWriter:
    """The foreachBatch sink: one call per micro-batch, safe to re-run for the same batch id."""

    def __init__(self, settings: Settings, contract: DatasetContract) -> None:
        self.settings = settings
        self.contract = contract
        self.table = settings.lakehouse.table_uri("bronze", contract.name)
        self.app_id = settings.bronze.app_id(JOB, contract.name)
        self.dlq = DlqTarget(
            topic=contract.dlq_topic,
            producer_config=settings.kafka.producer_config(client_id=f"streamlake-bronze-{contract.name}-dlq"),
            job=f"bronze_stream/{contract.name} app_id={self.app_id}",
        )
        self._tally: Accumulator | None = None

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        context = {"dataset": self.contract.name, "batch_id": batch_id, "path": self.table}
        if self._tally is None:  # one accumulator for the query's life, zeroed per attempt
            self._tally = batch_df.sparkSession.sparkContext.accumulator(empty_tally(), TallyParam())
        tally = self._tally

        def write() -> None:
            tally.value = empty_tally()  # only this attempt's tasks count
            bronze_df = (
                batch_df.transform(valid_rows_after_dlq, self.contract, self.settings.bronze.max_value_bytes, self.dlq, tally)
                .transform(to_bronze_rows, self.contract, batch_id)
            )
            append_delta_idempotent(bronze_df, self.table, self.app_id, batch_id, BRONZE_PARTITION_COLUMNS)

        # One Spark job judges the batch, sends its invalid records to the DLQ (every one
        # acknowledged before its task ends) and writes the valid ones; Delta commits only then.
        what = f"Bronze Delta write to {self.table} (with its DLQ records to {self.contract.dlq_topic})"
        with_retries(write, what, self.settings.bronze, context)
        counts = tally.value
        spark = batch_df.sparkSession
        invalid = sum(counts["invalid"].values())
        log.info(
            "bronze batch committed",
            extra={
                **context,
                "topic": self.contract.raw_topic,
                "offsets": dict(sorted(counts["offsets"].items(), key=lambda item: int(item[0]))),
                "rows": counts["rows"],
                "valid": counts["rows"] - invalid,
                "invalid": invalid,
                "dlq_reasons": counts["invalid"],
                "dlq_topic": self.contract.dlq_topic,
                "delta_version": delta_version(spark, self.table),
                "duration_ms": round((time.monotonic() - started) * 1000),
                # A restart replays the batch its crash left uncommitted in the checkpoint; when
                # Delta already held it, Delta skipped the write before any task ran (its DLQ
                # records went out the first time).
                **({"note": "no rows judged: Delta already held this batch, or it was empty"} if counts["rows"] == 0 else {}),
            },
        )


def start_bronze_query(spark: SparkSession, settings: Settings, dataset: str, *, available_now: bool = False) -> StreamingQuery:
    contract = get_contract(dataset)
    writer = BronzeBatchWriter(settings, contract)
    checkpoint = settings.lakehouse.checkpoint_uri(JOB, dataset)
    check_checkpoint_matches_table(spark, checkpoint, writer.table, writer.app_id)
    create_bronze_table(spark, contract, writer.table)
    stream_df = (
        spark.readStream.format("kafka")
        .options(**kafka_source_options(settings, contract.raw_topic))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", settings.bronze.max_offsets_per_trigger)
        .load()
    )
    trigger = {"availableNow": True} if available_now else {"processingTime": settings.bronze.trigger_interval}
    log.info(
        "starting bronze stream",
        extra={"dataset": dataset, "topic": contract.raw_topic, "path": writer.table, "checkpoint": checkpoint,
               "app_id": writer.app_id, "dlq_topic": contract.dlq_topic},
    )
    return (
        stream_df.writeStream.foreachBatch(writer)
        .option("checkpointLocation", checkpoint)
        .queryName(f"bronze-{dataset}")
        .trigger(**trigger)
        .start()
    )


def main(argv: list[str] | None = None) -> int:
    return run_streaming_job(
        JOB, "Kafka raw topic -> Bronze Delta + DLQ, exactly once.",
        lambda spark, settings, dataset, available_now: [start_bronze_query(spark, settings, dataset, available_now=available_now)],
        argv, "process what is in Kafka now, then exit",
    )


if __name__ == "__main__":
    sys.exit(main())
