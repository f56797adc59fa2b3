"""The Bronze benchmark's baseline as a job: a dataset's raw Kafka rows copied to Delta as they are
(no parsing, validation or DLQ), with Bronze's source options and batch size.

    spark-submit bench/raw_copy_stream.py --dataset user_events [--available-now]

The same query runs inside the benchmark's own session (`start_raw_copy_query`) for the warm
rounds; as a spark-submit job it gives the cold start that Bronze's is compared with.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from conf.settings import Settings
from contracts.registry import get_contract
from jobs.entrypoint import run_streaming_job
from jobs.lakehouse_io import ensure_delta_table, kafka_source_options
from pipelines.bronze import KAFKA_SOURCE_SCHEMA

JOB = "raw_copy"


def start_raw_copy_query(
    spark: SparkSession, settings: Settings, topic: str, table: str, checkpoint: str, *, available_now: bool = True,
) -> StreamingQuery:
    """Kafka rows straight into Delta: to the end of what the topic holds now, or on Bronze's trigger."""
    ensure_delta_table(spark, table, KAFKA_SOURCE_SCHEMA, [], {})  # as Bronze does before its first batch
    trigger = {"availableNow": True} if available_now else {"processingTime": settings.bronze.trigger_interval}
    return (
        spark.readStream.format("kafka").options(**kafka_source_options(settings, topic))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", settings.bronze.max_offsets_per_trigger).load()
        .writeStream.format("delta").option("checkpointLocation", checkpoint)
        .queryName(f"{JOB}-{topic}")
        .trigger(**trigger).start(table)
    )


def main(argv: list[str] | None = None) -> int:
    def start(spark: SparkSession, settings: Settings, dataset: str, available_now: bool) -> list[StreamingQuery]:
        root = settings.lakehouse.root
        return [start_raw_copy_query(spark, settings, get_contract(dataset).raw_topic, f"{root}/{JOB}/{dataset}",
                                     f"{root}/_checkpoints/{JOB}/{dataset}", available_now=available_now)]

    return run_streaming_job(JOB, "Raw Kafka rows -> Delta, as they are (the Bronze benchmark's baseline).", start, argv)


if __name__ == "__main__":
    sys.exit(main())
