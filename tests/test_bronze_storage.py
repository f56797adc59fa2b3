"""Bronze's Parquet storage, on a table the real stream wrote from a fixed input: the codec and
encodings in the files' footers, the bytes per event, and delta-rs reading the same rows as Spark.

The input is deterministic (events, ids, receive times and Kafka timestamps all fixed), so the
table's size is the same on every run; the bound is the figure the defaults reach, with a margin
that a lost setting (snappy, zstd's default level, v1 pages, INT96 timestamps) exceeds.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from conf.settings import ConfigError, Settings, load_settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from jobs.spark_session import parquet_conf
from streamlake import synthetic
from streamlake.topics import apply_topics, declared_topics
from tests.bronze_support import DICTIONARY_ENCODINGS
from tests.conftest import running_broker

USER_EVENTS = get_contract("user_events")
EVENTS = 30_000
RECEIVED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Kafka timestamps start at today's UTC midnight: older ones would fall out of the topic's retention
# at once, and the day's start changes no more than a byte of a delta-encoded column.
KAFKA_TIME_MS = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
# The defaults write this input in 126.1 bytes per event; zstd's default level (3) takes it to
# 133.2, INT96 timestamps to 133.2, v1 pages to 135.0, snappy to 228.6.
MAX_BYTES_PER_EVENT = 128
DELTA_ENCODINGS = frozenset({"DELTA_BINARY_PACKED", "DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"})


@dataclass(frozen=True)
class StorageRun:
    settings: Settings
    table_uri: str
    produced: dict[tuple[int, int], tuple[bytes, bytes, list[tuple[str, bytes]]]]  # (partition, offset) -> record

    @property
    def table_dir(self) -> Path:
        return Path(urlparse(self.table_uri).path)

    def data_files(self) -> list[Path]:
        return sorted(self.table_dir.rglob("*.parquet"))


def fixed_records(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """`count` user_events envelopes, byte for byte the same on every run."""
    rng = random.Random(5)
    return [
        wrap(USER_EVENTS, event, "tests", ingestion_id=uuid.UUID(int=rng.getrandbits(128), version=4),
             received_at=RECEIVED_AT + timedelta(milliseconds=index))
        for index, event in enumerate(synthetic.user_events(count, seed=23))
    ]


def produce_fixed(settings: Settings, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> dict:
    """Produce the records with fixed Kafka timestamps; return them by their delivered coordinates."""
    producer = Producer({**settings.kafka.producer_config(client_id="tests"), "linger.ms": 50})
    delivered: dict[tuple[int, int], tuple[bytes, bytes, list[tuple[str, bytes]]]] = {}
    errors = []

    def on_delivery(record):
        def report(err, msg) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered[(msg.partition(), msg.offset())] = record
        return report

    for index, record in enumerate(records):
        key, value, headers = record
        while True:
            try:
                producer.produce(USER_EVENTS.raw_topic, key=key, value=value, headers=headers,
                                 timestamp=KAFKA_TIME_MS + index, on_delivery=on_delivery(record))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0 and not errors, errors
    assert len(delivered) == len(records)
    return delivered


@pytest.fixture(scope="module")
def storage_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):
    """The fixed input through the real Bronze stream, on a broker of its own: the raw topic holds
    these records only, so the table's size is theirs."""
    folder = tmp_path_factory.mktemp("bronze-storage")
    with running_broker(folder / "kafka") as broker:
        settings = load_settings(kafka={"bootstrap_servers": broker.bootstrap}, lakehouse={"root": (folder / "lake").as_uri()})
        apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
        produced = produce_fixed(settings, fixed_records(EVENTS))
        query = start_bronze_query(spark, settings, USER_EVENTS.name, available_now=True)
        query.awaitTermination()
        assert query.exception() is None, query.exception()
    yield StorageRun(settings, settings.lakehouse.table_uri("bronze", USER_EVENTS.name), produced)


def test_every_column_of_every_file_is_zstd(storage_run: StorageRun) -> None:
    codecs = {
        (chunk.path_in_schema, chunk.compression)
        for data_file in storage_run.data_files()
        for metadata in [pq.ParquetFile(data_file).metadata]
        for group in range(metadata.num_row_groups)
        for chunk in (metadata.row_group(group).column(i) for i in range(metadata.num_columns))
    }
    columns = {column for column, _ in codecs}
    assert codecs == {(column, "ZSTD") for column in columns}
    assert len(columns) == 21  # every Bronze column but the partition column, kafka_headers as key and value


def test_columns_without_a_dictionary_are_delta_encoded_and_timestamps_are_micros(storage_run: StorageRun) -> None:
    data_file = storage_run.data_files()[0]
    metadata = pq.ParquetFile(data_file).metadata
    encodings = {metadata.row_group(0).column(i).path_in_schema: set(metadata.row_group(0).column(i).encodings)
                 for i in range(metadata.num_columns)}
    kinds = {column: "dictionary" if found & DICTIONARY_ENCODINGS else "delta" if found & DELTA_ENCODINGS else sorted(found)
             for column, found in encodings.items()
             if column in {"event_type", "kafka_topic", "kafka_headers.list.element.key", "raw_value", "event_id",
                           "ingestion_id", "kafka_headers.list.element.value", "kafka_offset", "event_timestamp"}}
    assert kinds == {
        "event_type": "dictionary", "kafka_topic": "dictionary", "kafka_headers.list.element.key": "dictionary",
        "raw_value": "delta", "event_id": "delta", "ingestion_id": "delta", "kafka_headers.list.element.value": "delta",
        "kafka_offset": "delta", "event_timestamp": "delta",
    }
    schema = pq.ParquetFile(data_file).schema_arrow
    assert {name: str(schema.field(name).type) for name in ("event_timestamp", "received_at", "kafka_timestamp")} == {
        "event_timestamp": "timestamp[us, tz=UTC]", "received_at": "timestamp[us, tz=UTC]", "kafka_timestamp": "timestamp[us, tz=UTC]",
    }
    assert {str(pq.ParquetFile(data_file).schema.column(i).physical_type) for i in range(metadata.num_columns)
            if pq.ParquetFile(data_file).schema.column(i).name.endswith("timestamp")} == {"INT64"}


def test_an_event_takes_at_most_the_bytes_the_defaults_reach(storage_run: StorageRun) -> None:
    table = DeltaTable(storage_run.table_uri)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    assert sum(actions["num_records"]) == EVENTS
    assert sum(actions["size_bytes"]) == sum(f.stat().st_size for f in storage_run.data_files())
    assert sum(actions["size_bytes"]) / EVENTS <= MAX_BYTES_PER_EVENT


def test_delta_rs_reads_the_rows_spark_reads(spark: SparkSession, storage_run: StorageRun) -> None:
    spark_rows = spark.read.format("delta").load(storage_run.table_uri).orderBy("kafka_partition", "kafka_offset").toArrow()
    delta_rs_rows = DeltaTable(storage_run.table_uri).to_pyarrow_table().sort_by([("kafka_partition", "ascending"),
                                                                                 ("kafka_offset", "ascending")])
    assert delta_rs_rows.column_names == spark_rows.column_names
    assert delta_rs_rows.num_rows == spark_rows.num_rows == EVENTS
    assert delta_rs_rows.to_pylist() == spark_rows.to_pylist()


def test_the_raw_value_and_headers_are_the_produced_bytes(storage_run: StorageRun) -> None:
    # Raw stays raw through delta-encoded pages: the value text and every header, byte for byte.
    rows = DeltaTable(storage_run.table_uri).to_pyarrow_table(
        columns=["kafka_partition", "kafka_offset", "kafka_key", "raw_value", "kafka_headers"]).to_pylist()
    landed = {(r["kafka_partition"], r["kafka_offset"]): (r["kafka_key"].encode(), r["raw_value"].encode(),
                                                          [(h["key"], h["value"]) for h in r["kafka_headers"]]) for r in rows}
    assert landed == storage_run.produced


def test_the_codec_and_level_come_from_the_lakehouse_settings() -> None:
    conf = parquet_conf(load_settings(lakehouse={"parquet_compression": "snappy", "parquet_zstd_level": 9}))
    assert conf == {
        "spark.sql.parquet.compression.codec": "snappy",
        "spark.hadoop.parquet.compression.codec.zstd.level": "9",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("parquet_zstd_level", 23, "Input should be less than or equal to 22"),
    ("parquet_compression", "brotli", "Input should be 'zstd', 'snappy', 'gzip', 'lz4_raw' or 'uncompressed'"),
])
def test_a_bad_storage_setting_names_its_key(key: str, value: object, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(lakehouse={key: value})
    assert str(caught.value) == f"invalid StreamLake configuration: lakehouse.{key}: {reason} (got {value!r})"
