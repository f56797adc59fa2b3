"""Session-wide real components: one Kafka broker on free loopback ports, one SparkSession.

Both are started once per test session and always stopped at the end, even on failure. A component
that cannot start fails the tests that need it with a message naming it; nothing is skipped.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from conf.settings import Settings, load_settings
from streamlake.kafka_broker import BrokerError, LocalBroker
from streamlake.ports import free_port
from tests.ingest_api_support import apply_raw_topics, serving, settings_for

TEST_BROKER_HEAP = "384m"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A developer's STREAMLAKE_* variables must not change what the tests see.
    for key in [k for k in os.environ if k.startswith("STREAMLAKE_")]:
        del os.environ[key]
    # Streaming jobs the tests start beat their heartbeat here, not over a local job's in var/.
    os.environ["STREAMLAKE_STREAMS__HEARTBEAT_DIR"] = str(tmp_path_factory.mktemp("streams"))


def start_broker(data_dir: Path) -> LocalBroker:
    broker = LocalBroker(
        data_dir=data_dir,
        jars_dir=load_settings().jvm.kafka_jars_dir,
        port=free_port(),
        controller_port=free_port(),
        heap=TEST_BROKER_HEAP,
    )
    try:
        broker.start(tie_to_parent=True)
    except BrokerError as exc:
        broker.stop(timeout_s=10)
        pytest.fail(f"the Kafka broker could not start (needed by this test): {exc}", pytrace=False)
    return broker


@contextmanager
def running_broker(data_dir: Path) -> Iterator[LocalBroker]:
    """A broker of its own for the block, stopped at its end even on failure."""
    broker = start_broker(data_dir)
    try:
        yield broker
    finally:
        broker.stop(timeout_s=30)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="session")
def lakehouse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lakehouse")


@pytest.fixture(scope="session")
def settings(kafka_broker: LocalBroker, lakehouse_dir: Path) -> Settings:
    """Settings of the test session: the session broker and a temporary lakehouse."""
    return load_settings(
        kafka={
            "bootstrap_servers": kafka_broker.bootstrap,
            "local_broker": {"port": kafka_broker.port, "controller_port": kafka_broker.controller_port,
                             "data_dir": str(kafka_broker.data_dir)},
        },
        lakehouse={"root": lakehouse_dir.as_uri()},
    )


@pytest.fixture(scope="session")
def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for subprocesses (CLI, spark-submit) that must see the test session's settings."""
    broker = settings.kafka.local_broker
    return {
        **os.environ,
        "STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap,
        "STREAMLAKE_KAFKA__LOCAL_BROKER__PORT": str(broker.port),
        "STREAMLAKE_KAFKA__LOCAL_BROKER__CONTROLLER_PORT": str(broker.controller_port),
        "STREAMLAKE_KAFKA__LOCAL_BROKER__DATA_DIR": str(broker.data_dir),
        "STREAMLAKE_LAKEHOUSE__ROOT": settings.lakehouse.root,
    }


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from jobs.spark_session import build_spark_session

    try:
        session = build_spark_session(settings, "streamlake-tests")
    except Exception as exc:  # noqa: BLE001 - any start-up failure must name Spark
        pytest.fail(f"Spark could not start (needed by this test): {exc}", pytrace=False)
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory):
    """One fake-gcs-server for the session, with the tests' bucket (tests.gcs_support)."""
    from tests.gcs_support import running_gcs_emulator

    with running_gcs_emulator(tmp_path_factory.mktemp("gcs")) as gcs:
        yield gcs


@pytest.fixture
def admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka.client_config())


def wait_for_topic(admin: AdminClient, name: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Creation is acknowledged before every broker cache shows it; wait until metadata does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} did not appear with {partitions} partitions within {timeout_s}s")


@pytest.fixture
def new_topic(admin: AdminClient):
    """Create a uniquely named topic for one test; deleted afterwards."""
    created: list[str] = []

    def create(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(timeout=30)
        created.append(name)
        wait_for_topic(admin, name, partitions)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created).values():
            future.result(timeout=30)


# -- the ingestion API -------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The session broker with its raw topics applied (idempotent), and the API's defaults."""
    apply_raw_topics(settings)
    return settings_for(settings.kafka.bootstrap)


@pytest.fixture
async def client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(api_settings) as client:
        yield client


@pytest.fixture
def consumer(settings: Settings) -> Iterator[Consumer]:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        yield consumer
    finally:
        consumer.close()
