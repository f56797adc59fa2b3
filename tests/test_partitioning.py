"""A key lands on the same partition whichever client wrote it: StreamLake's Python producers (the
API's, the tools', the re-drive's) and Java clients such as Spark's Kafka sink."""

from __future__ import annotations

from confluent_kafka import Producer
from pyspark.sql import SparkSession

from conf.settings import Settings
from tests.bronze_support import read_topic
from tests.factories import java_client_partition

PARTITIONS = 6
KEYS = [str(n).encode() for n in range(200)] + [b"", b"a", b"ab", b"abc", "user-\u00e9".encode()]


def _partitions_by_key(settings: Settings, topic: str) -> dict[bytes, int]:
    return {msg.key(): msg.partition() for msg in read_topic(settings, topic)}


def test_python_producers_and_spark_put_each_key_on_the_same_partition(spark: SparkSession, settings: Settings, new_topic) -> None:
    from_python, from_spark = new_topic(PARTITIONS), new_topic(PARTITIONS)
    producer = Producer(settings.kafka.producer_config(client_id="tests-partitioning"))
    for key in KEYS:
        producer.produce(from_python, key=key, value=b"x")
    assert producer.flush(30) == 0
    (
        spark.createDataFrame([(key, b"x") for key in KEYS], "key binary, value binary")
        .write.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap).option("topic", from_spark).save()
    )

    python_partitions, spark_partitions = _partitions_by_key(settings, from_python), _partitions_by_key(settings, from_spark)
    assert python_partitions == spark_partitions
    assert python_partitions == {key: java_client_partition(key, PARTITIONS) for key in KEYS}
    assert len(set(python_partitions.values())) == PARTITIONS  # the keys spread: a test of something
