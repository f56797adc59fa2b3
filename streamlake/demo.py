"""`make demo`: the main job, Kafka -> Bronze Delta + DLQ, on the embedded defaults.

Starts the local broker (unless one already runs), applies topics, produces synthetic events and a
few poison pills (as a producer writing straight to Kafka could), runs the Bronze job over what is
in Kafka (the same query as `streamlake stream bronze`, stopping once caught up), and reconciles:
each raw topic partition's offsets against the Bronze rows and the DLQ records from it. It stops
what it started.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conf.settings import Settings
from contracts import DATASETS
from contracts.envelope import wrap
from contracts.registry import DatasetContract
from streamlake import synthetic
from streamlake.kafka_broker import LocalBroker
from streamlake.producing import produce_events
from streamlake.topics import apply_topics, declared_topics

if TYPE_CHECKING:
    from streamlake.reconcile import DatasetReconciliation

DEMO_PRODUCER = "streamlake-demo"


def poison_pills(contract: DatasetContract, seed: int = 5) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) of records the API would refuse but a direct producer can still send."""
    event = next(iter(synthetic.events(contract.name, 1, seed=seed)))
    key, value, _ = wrap(contract, event, DEMO_PRODUCER)
    document = json.loads(value)
    wrong_type = {**document, "payload": {**document["payload"], contract.business_key: [1]}}
    newer = {**document, "schema_version": "99"}
    return [
        ("malformed JSON", key, value[: len(value) // 2]),
        (f"{contract.business_key} of the wrong type", key, json.dumps(wrong_type).encode()),
        ("an unknown schema_version", key, json.dumps(newer).encode()),
    ]


def produce_poison_pills(settings: Settings, contract: DatasetContract) -> list[str]:
    producer = Producer(settings.kafka.producer_config(client_id=DEMO_PRODUCER))
    pills = poison_pills(contract)
    for _, key, value in pills:
        producer.produce(contract.raw_topic, key=key, value=value)
    if producer.flush(60):
        raise RuntimeError(f"poison pills not acknowledged by {contract.raw_topic}")
    return [kind for kind, _, _ in pills]


def run_demo(settings: Settings, events_per_dataset: int, echo: Callable[[str], None] = print) -> list[DatasetReconciliation]:
    broker = LocalBroker.from_settings(settings)
    uses_local_broker = settings.kafka.bootstrap_servers is None
    started_here = uses_local_broker and broker.status().pid is None
    try:
        if uses_local_broker:
            echo(f"starting kafka broker at {broker.bootstrap} ..." if started_here else f"kafka broker already up at {broker.bootstrap}")
            broker.start()
        for result in apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings)):
            echo(f"  topic {result}")
        for dataset, contract in DATASETS.items():
            count = produce_events(settings, dataset, synthetic.events(dataset, events_per_dataset), DEMO_PRODUCER)
            echo(f"produced {count} {dataset} events (idempotent producer, acks=all)")
            kinds = produce_poison_pills(settings, contract)
            echo(f"produced {len(kinds)} poison pills straight to {contract.raw_topic}: {', '.join(kinds)}")
        summaries = _run_bronze(settings, echo)
    finally:
        if started_here:
            echo("stopping the kafka broker this demo started")
            broker.stop()
    return summaries


def _run_bronze(settings: Settings, echo: Callable[[str], None]) -> list[DatasetReconciliation]:
    # Imported here so that `streamlake kafka ...` and `topics ...` never pay for starting Spark.
    from jobs.bronze_stream import start_bronze_query
    from jobs.spark_session import build_spark_session
    from streamlake.reconcile import reconcile_dataset

    spark = build_spark_session(settings, "streamlake-demo")
    summaries = []
    try:
        for dataset, contract in DATASETS.items():
            echo(f"running the Bronze job over {contract.raw_topic} until it has caught up ...")
            query = start_bronze_query(spark, settings, dataset, available_now=True)
            query.awaitTermination()
            if query.exception() is not None:
                raise RuntimeError(f"the Bronze job for {dataset} failed: {query.exception()}")
            summaries.append(reconcile_dataset(spark, settings, contract))
    finally:
        spark.stop()
    for summary in summaries:
        echo(format_summary(summary))
    return summaries


def format_summary(summary: DatasetReconciliation) -> str:
    contract = DATASETS[summary.dataset]
    lines = [
        f"{contract.raw_topic}: {summary.messages} messages in Kafka -> {summary.bronze_rows} Bronze rows "
        f"({summary.bronze_path}) + {summary.dlq_records} DLQ records ({contract.dlq_topic})"
    ]
    for p in summary.partitions:
        kafka_range = f"offsets [{p.low}, {p.high})" if p.low is not None else "not a partition Kafka lists"
        verdict = "" if p.is_reconciled else "  DOES NOT RECONCILE"
        lines.append(f"  partition {p.partition}: {kafka_range} -> {p.bronze_rows} Bronze rows + {p.dlq_records} DLQ records{verdict}")
    reasons = ", ".join(f"{error_class} {n}" for error_class, n in summary.dlq_reasons.items()) or "none"
    lines.append(f"  DLQ reasons: {reasons}")
    return "\n".join(lines)
