"""Topic provisioning from the contracts and configuration (`streamlake topics apply`).

For every registered dataset: `streamlake.<dataset>.raw` and `streamlake.<dataset>.dlq`, with
partitions, retention and cleanup policy from settings. Idempotent: existing topics that match are
left alone. A topic that differs from its declaration is reported, never silently changed, except
that partitions may be increased on request (Kafka cannot decrease them, and adding partitions
moves keys between partitions, so it must be a deliberate act).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType

from conf.settings import Settings
from contracts import DATASETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


class Action(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    PARTITIONS_INCREASED = "partitions_increased"
    DRIFT = "drift"


@dataclass(frozen=True)
class TopicResult:
    topic: str
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.topic}: {self.action}" + (f" ({self.detail})" if self.detail else "")


def declared_topics(settings: Settings) -> list[TopicSpec]:
    topics = settings.topics
    specs = []
    for contract in DATASETS.values():
        specs.append(
            TopicSpec(
                contract.raw_topic,
                topics.raw_partitions,
                topics.replication_factor,
                {"retention.ms": str(topics.raw_retention_ms), "cleanup.policy": topics.cleanup_policy},
            )
        )
        specs.append(
            TopicSpec(
                contract.dlq_topic,
                topics.dlq_partitions,
                topics.replication_factor,
                {"retention.ms": str(topics.dlq_retention_ms), "cleanup.policy": topics.cleanup_policy},
            )
        )
    return specs


def _existing_partitions(admin: AdminClient, timeout_s: float) -> dict[str, int]:
    metadata = admin.list_topics(timeout=timeout_s)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _listing_with(admin: AdminClient, names: list[str], timeout_s: float) -> dict[str, int]:
    """The topic listing once it shows `names`: a topic the broker says exists can be missing from
    its metadata for a moment after it was created."""
    deadline = time.monotonic() + timeout_s
    while True:
        existing = _existing_partitions(admin, timeout_s)
        absent = [name for name in names if name not in existing]
        if not absent:
            return existing
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {', '.join(absent)} exist but are not in the broker's metadata after {timeout_s:g} s")
        time.sleep(0.2)


def _config_drift(admin: AdminClient, spec: TopicSpec, timeout_s: float) -> list[str]:
    resource = ConfigResource(ResourceType.TOPIC, spec.name)
    actual = admin.describe_configs([resource])[resource].result(timeout=timeout_s)
    return [
        f"{key} is {actual[key].value}, declared {value}"
        for key, value in spec.config.items()
        if key in actual and actual[key].value != value
    ]


def _reconcile(
    admin: AdminClient, spec: TopicSpec, have: int, increase_partitions: bool, timeout_s: float
) -> TopicResult:
    problems = _config_drift(admin, spec, timeout_s)
    if have > spec.partitions:
        problems.append(f"has {have} partitions, declared {spec.partitions}; Kafka cannot decrease partitions")
    elif have < spec.partitions and not increase_partitions:
        problems.append(f"has {have} partitions, declared {spec.partitions}; rerun with --increase-partitions")
    elif have < spec.partitions:
        admin.create_partitions([NewPartitions(spec.name, spec.partitions)])[spec.name].result(timeout=timeout_s)
        if not problems:
            return TopicResult(spec.name, Action.PARTITIONS_INCREASED, f"{have} -> {spec.partitions}")
        problems.insert(0, f"partitions increased {have} -> {spec.partitions}")
    if problems:
        return TopicResult(spec.name, Action.DRIFT, "; ".join(problems))
    return TopicResult(spec.name, Action.UNCHANGED)


def apply_topics(
    admin: AdminClient, specs: list[TopicSpec], *, increase_partitions: bool = False, timeout_s: float = 30.0
) -> list[TopicResult]:
    """Create missing topics and report every difference between declared and actual topics."""
    existing = _existing_partitions(admin, timeout_s)
    missing = [s for s in specs if s.name not in existing]
    results: dict[str, TopicResult] = {}
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config) for s in missing],
            operation_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                # Someone created it between our listing and our request: reconcile it below.
                if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise RuntimeError(f"creating topic {name} failed: {exc.args[0].str()}") from exc
            results[name] = TopicResult(name, Action.CREATED)
        if len(results) < len(missing):
            existing = _listing_with(admin, [s.name for s in missing if s.name not in results], timeout_s)
    for spec in specs:
        if spec.name not in results:
            results[spec.name] = _reconcile(admin, spec, existing[spec.name], increase_partitions, timeout_s)
    ordered = [results[s.name] for s in specs]
    for result in ordered:
        log.info("topic %s", result.action, extra={"topic": result.topic, "detail": result.detail})
    return ordered
