"""The GCS emulator for tests: one fake-gcs-server with a bucket, and settings (or a subprocess
environment) whose lakehouse is on `gs://` through the `gcs-emulator` profile (conf/gcs-emulator.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conf.settings import Settings, load_settings
from streamlake.gcs_emulator import EmulatorError, GcsEmulator
from streamlake.ports import free_port

GCS_ENV = "gcs-emulator"
TEST_BUCKET = "streamlake-tests"


@dataclass(frozen=True)
class RunningGcs:
    endpoint: str
    bucket: str
    emulator: GcsEmulator

    def root(self, prefix: str) -> str:
        return f"gs://{self.bucket}/{prefix}"

    def objects(self, prefix: str) -> list[str]:
        return self.emulator.list_objects(self.bucket, prefix)


@contextmanager
def running_gcs_emulator(tmp_dir: Path, bucket: str = TEST_BUCKET) -> Iterator[RunningGcs]:
    """fake-gcs-server on a free loopback port with `bucket` created; stopped at the block's end."""
    emulator = GcsEmulator(port=free_port(), log_file=tmp_dir / "fake-gcs.log")
    try:
        emulator.start()
        emulator.create_bucket(bucket)
    except EmulatorError as exc:
        emulator.stop()
        pytest.fail(f"the GCS emulator could not start (needed by this test): {exc}", pytrace=False)
    try:
        yield RunningGcs(emulator.endpoint, bucket, emulator)
    finally:
        emulator.stop()


def gcs_settings(base: Settings, gcs: RunningGcs, prefix: str, **overrides: Any) -> Settings:
    """`base`'s Kafka (the session broker) with the emulator profile and a lakehouse at gs://<bucket>/<prefix>;
    `overrides` are further sections (e.g. `bronze={...}`)."""
    broker = base.kafka.local_broker
    return load_settings(
        env=GCS_ENV,
        kafka={"bootstrap_servers": base.kafka.bootstrap,
               "local_broker": {"port": broker.port, "controller_port": broker.controller_port,
                                "data_dir": str(broker.data_dir)}},
        gcs={"endpoint": gcs.endpoint},
        lakehouse={"root": gcs.root(prefix)},
        **overrides,
    )


def gcs_env(settings_env: dict[str, str], gcs: RunningGcs, prefix: str) -> dict[str, str]:
    """A subprocess environment (CLI, spark-submit) with the same settings as `gcs_settings`."""
    return {**settings_env, "STREAMLAKE_ENV": GCS_ENV, "STREAMLAKE_GCS__ENDPOINT": gcs.endpoint,
            "STREAMLAKE_LAKEHOUSE__ROOT": gcs.root(prefix)}


def point_spark_at(spark: Any, settings: Settings, gcs: RunningGcs) -> Any:
    """The session's Spark with its Hadoop conf pointed at the emulator (the profile's `spark.hadoop.*`
    keys), to read and write gs:// paths from the test process."""
    from jobs.spark_session import gcs_conf

    conf = spark._jsc.hadoopConfiguration()
    for key, value in gcs_conf(gcs_settings(settings, gcs, "unused")).items():
        if key.startswith("spark.hadoop."):
            conf.set(key.removeprefix("spark.hadoop."), value)
    return spark
