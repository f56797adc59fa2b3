"""Topic provisioning against the real broker: names from contracts, idempotence, drift, growth."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from confluent_kafka.admin import AdminClient

from conf.settings import Settings
from streamlake.topics import Action, TopicResult, TopicSpec, apply_topics, declared_topics
from tests.conftest import wait_for_topic

WEEK_MS = str(7 * 24 * 3600 * 1000)
MONTH_MS = str(30 * 24 * 3600 * 1000)


def test_declared_topics_follow_contracts_and_config(settings: Settings) -> None:
    assert declared_topics(settings) == [
        TopicSpec("streamlake.user_events.raw", 3, 1, {"retention.ms": WEEK_MS, "cleanup.policy": "delete"}),
        TopicSpec("streamlake.user_events.dlq", 1, 1, {"retention.ms": MONTH_MS, "cleanup.policy": "delete"}),
        TopicSpec("streamlake.orders.raw", 3, 1, {"retention.ms": WEEK_MS, "cleanup.policy": "delete"}),
        TopicSpec("streamlake.orders.dlq", 1, 1, {"retention.ms": MONTH_MS, "cleanup.policy": "delete"}),
    ]


def _renamed(specs: list[TopicSpec], suffix: str) -> list[TopicSpec]:
    return [dataclasses.replace(s, name=f"{s.name}.{suffix}") for s in specs]


def test_apply_creates_once_then_changes_nothing(settings: Settings, admin: AdminClient) -> None:
    specs = _renamed(declared_topics(settings), "idem")
    first = apply_topics(admin, specs)
    second = apply_topics(admin, specs)
    assert [r.action for r in first] == [Action.CREATED] * 4
    assert second == [TopicResult(s.name, Action.UNCHANGED) for s in specs]
    topics = admin.list_topics(timeout=10).topics
    assert {s.name: len(topics[s.name].partitions) for s in specs} == {s.name: s.partitions for s in specs}


def test_drift_in_partitions_and_config_is_reported_not_changed(admin: AdminClient, new_topic) -> None:
    name = new_topic(partitions=1, config={"retention.ms": "1000"})
    spec = TopicSpec(name, 3, 1, {"retention.ms": WEEK_MS, "cleanup.policy": "delete"})
    [result] = apply_topics(admin, [spec])
    assert result == TopicResult(
        name,
        Action.DRIFT,
        f"retention.ms is 1000, declared {WEEK_MS}; has 1 partitions, declared 3; rerun with --increase-partitions",
    )
    assert len(admin.list_topics(timeout=10).topics[name].partitions) == 1


def test_partitions_increase_only_on_request(admin: AdminClient, new_topic) -> None:
    name = new_topic(partitions=1)
    [result] = apply_topics(admin, [TopicSpec(name, 3, 1)], increase_partitions=True)
    assert result == TopicResult(name, Action.PARTITIONS_INCREASED, "1 -> 3")
    # The increase is acknowledged before every broker's metadata shows it.
    wait_for_topic(admin, name, partitions=3)


def test_partitions_are_never_decreased(admin: AdminClient, new_topic) -> None:
    name = new_topic(partitions=4)
    [result] = apply_topics(admin, [TopicSpec(name, 2, 1)], increase_partitions=True)
    assert result == TopicResult(name, Action.DRIFT, "has 4 partitions, declared 2; Kafka cannot decrease partitions")
    assert len(admin.list_topics(timeout=10).topics[name].partitions) == 4


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamlake", *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_topics_apply_twice_creates_nothing_the_second_time(settings_env: dict[str, str]) -> None:
    first = _cli("topics", "apply", env=settings_env)
    second = _cli("topics", "apply", env=settings_env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        "streamlake.user_events.raw: unchanged",
        "streamlake.user_events.dlq: unchanged",
        "streamlake.orders.raw: unchanged",
        "streamlake.orders.dlq: unchanged",
        "0 created, 0 with drift, 4 declared",
    ]
