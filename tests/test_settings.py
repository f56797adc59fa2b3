"""Settings: defaults need no configuration; YAML then env vars override; bad values name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conf.settings import PROJECT_DIR, ConfigError, load_settings


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMLAKE_CONF_DIR", str(tmp_path))
    (tmp_path / "local.yaml").write_text("env: local\n")
    return tmp_path


def test_embedded_default_needs_no_configuration() -> None:
    settings = load_settings()
    assert (settings.env, settings.kafka.bootstrap, settings.lakehouse.root) == (
        "local",
        "127.0.0.1:9092",
        (PROJECT_DIR / "var" / "lakehouse").as_uri(),
    )
    assert (settings.topics.raw_partitions, settings.topics.dlq_partitions) == (3, 1)


def test_yaml_overrides_defaults_and_env_vars_override_yaml(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (conf_dir / "staging.yaml").write_text(
        "topics:\n  raw_partitions: 6\n  dlq_partitions: 2\nlakehouse:\n  root: gs://lake-bucket/streamlake\n"
    )
    monkeypatch.setenv("STREAMLAKE_TOPICS__RAW_PARTITIONS", "8")
    settings = load_settings("staging")
    assert (settings.env, settings.topics.raw_partitions, settings.topics.dlq_partitions) == ("staging", 8, 2)
    assert settings.lakehouse.table_uri("bronze", "orders") == "gs://lake-bucket/streamlake/bronze/orders"
    assert settings.lakehouse.checkpoint_uri("bronze", "orders") == "gs://lake-bucket/streamlake/_checkpoints/bronze/orders"


def test_env_is_chosen_by_streamlake_env(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (conf_dir / "prod.yaml").write_text("kafka:\n  bootstrap_servers: kafka-1:9092,kafka-2:9092\n")
    monkeypatch.setenv("STREAMLAKE_ENV", "prod")
    assert load_settings().kafka.bootstrap == "kafka-1:9092,kafka-2:9092"


def test_unknown_key_in_yaml_is_named(conf_dir: Path) -> None:
    (conf_dir / "typo.yaml").write_text("topics:\n  raw_partition: 6\n")
    with pytest.raises(ConfigError, match=r"topics\.raw_partition: Extra inputs are not permitted \(got 6\)"):
        load_settings("typo")


def test_wrong_type_from_env_is_named_with_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLAKE_TOPICS__DLQ_PARTITIONS", "many")
    with pytest.raises(ConfigError, match=r"topics\.dlq_partitions: Input should be a valid integer.*\(got 'many'\)"):
        load_settings()


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://bucket/lake", "storage location must be a URI with scheme file or gs"),
        ("/data/lake", "storage location must be a URI with scheme file or gs"),
        ("file://relative/lake", "a file:// URI needs an absolute path, e.g. file:///data/lake"),
        ("gs:///lake", "a gs:// URI needs a bucket, e.g. gs://bucket/lake"),
    ],
)
def test_storage_uri_with_an_unusable_scheme_is_named(uri: str, reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLAKE_LAKEHOUSE__ROOT", uri)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == f"invalid StreamLake configuration: lakehouse.root: Value error, {reason} (got {uri!r})"


def test_unknown_env_names_the_missing_file(conf_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"env: no config file .*/nope\.yaml for env 'nope' \(known: local\)"):
        load_settings("nope")


def test_cli_fails_at_start_up_naming_the_bad_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "kafka", "status"],
        env={"PATH": "/usr/bin:/bin", "STREAMLAKE_KAFKA__LOCAL_BROKER__PORT": "port-9092"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "config error: invalid StreamLake configuration: kafka.local_broker.port:" in result.stderr
    assert "(got 'port-9092')" in result.stderr
