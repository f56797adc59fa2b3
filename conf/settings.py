"""StreamLake settings, defined once.

Layers, lowest to highest: the defaults below, then `conf/<env>.yaml` (env `local` is the embedded
default), then environment variables `STREAMLAKE_<SECTION>__<KEY>` (e.g.
`STREAMLAKE_LAKEHOUSE__ROOT=gs://bucket/lake`). A bad value fails at start-up with `ConfigError`
naming the key and the value. The embedded default needs no configuration: a loopback broker and a
lakehouse on local disk under the git-ignored `var/` folder.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONF_DIR = Path(__file__).resolve().parent
PROJECT_DIR = CONF_DIR.parent
VAR_DIR = PROJECT_DIR / "var"
DEFAULT_ENV = "local"
ENV_PREFIX = "STREAMLAKE_"
STORAGE_SCHEMES = ("file", "gs")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key and the value."""


def _check_storage_uri(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in STORAGE_SCHEMES:
        raise ValueError(f"storage location must be a URI with scheme {' or '.join(STORAGE_SCHEMES)}")
    if parsed.scheme == "file" and (parsed.netloc or not parsed.path.startswith("/")):
        raise ValueError("a file:// URI needs an absolute path, e.g. file:///data/lake")
    if parsed.scheme == "gs" and not parsed.netloc:
        raise ValueError("a gs:// URI needs a bucket, e.g. gs://bucket/lake")
    return value.rstrip("/")


StorageUri = Annotated[str, AfterValidator(_check_storage_uri)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalBrokerSettings(Section):
    """The single-node KRaft broker StreamLake starts itself (`streamlake kafka start`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    data_dir: Path = VAR_DIR / "kafka"
    heap: str = Field(default="512m", pattern=r"^\d+[mg]$")
    startup_timeout_s: float = Field(default=90.0, gt=0)


class KafkaSettings(Section):
    # None means "the embedded local broker"; set it to use any other cluster.
    bootstrap_servers: str | None = None
    local_broker: LocalBrokerSettings = LocalBrokerSettings()
    request_timeout_ms: int = Field(default=10_000, gt=0)

    @property
    def bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return f"{self.local_broker.host}:{self.local_broker.port}"

    def client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}

    def producer_config(
        self,
        client_id: str,
        *,
        delivery_timeout_ms: int = 30_000,
        queue_max_messages: int = 100_000,
        linger_ms: int = 5,
    ) -> dict[str, Any]:
        """An idempotent producer: acks=all, no duplicates from internal retries, order kept, keys
        partitioned as Java clients do.

        `delivery_timeout_ms` bounds how long a record may wait for the broker before its delivery
        report says it failed; `queue_max_messages` bounds the local queue, beyond which produce()
        fails at once instead of buffering without limit (the API answers 503 for both);
        `linger_ms` is how long a partition's batch waits for more records before it is sent.
        """
        return {
            **self.client_config(),
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            # Java clients' (and Spark's) partitioner: a key lands on the same partition whichever
            # client wrote it, so ordering per business key holds across producers.
            "partitioner": "murmur2_random",
            "delivery.timeout.ms": delivery_timeout_ms,
            "queue.buffering.max.messages": queue_max_messages,
        }


class TopicSettings(Section):
    raw_partitions: int = Field(default=3, ge=1)
    dlq_partitions: int = Field(default=1, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    raw_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    # The DLQ keeps records longer: people inspect and replay them days later.
    dlq_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1)
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"


class LakehouseSettings(Section):
    root: StorageUri = (VAR_DIR / "lakehouse").as_uri()
    # The Parquet codec of every table StreamLake writes, and zstd's level: level 1 gave Bronze's
    # smallest files and its cheapest writes (docs/bronze.md, "Storage").
    parquet_compression: Literal["zstd", "snappy", "gzip", "lz4_raw", "uncompressed"] = "zstd"
    parquet_zstd_level: int = Field(default=1, ge=1, le=22)

    def table_uri(self, layer: str, name: str) -> str:
        return f"{self.root}/{layer}/{name}"

    def checkpoint_uri(self, job: str, name: str) -> str:
        return f"{self.root}/_checkpoints/{job}/{name}"


class SparkSettings(Section):
    master: str = "local[2]"
    shuffle_partitions: int = Field(default=4, ge=1)
    driver_memory: str = Field(default="2g", pattern=r"^\d+[mg]$")
    ui_enabled: bool = False
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # The interpreter a cluster's executors run Python tasks with (`spark.pyspark.python`), a path
    # on the worker nodes; a local master always uses this machine's interpreter instead.
    executor_python: str = Field(default="python3", min_length=1)
    # Extra `spark.*` settings, passed through as-is (e.g. for a cluster).
    conf: dict[str, str] = {}


class BronzeSettings(Section):
    """The Bronze streaming job (Kafka -> Bronze Delta + DLQ)."""

    trigger_interval: str = "2 seconds"
    max_offsets_per_trigger: int = Field(default=100_000, ge=1)
    # A value larger than this goes to the DLQ as `oversized` instead of into Bronze.
    max_value_bytes: int = Field(default=1024 * 1024, ge=1)
    # Offsets that fell out of Kafka's retention stop the job unless this is explicitly false.
    fail_on_data_loss: bool = True
    # Delta idempotent-write app ids, per "<job>.<dataset>". A checkpoint reset must come with a
    # new app id (docs/runbook.md); the default is stable and never derived from the query id.
    app_ids: dict[str, str] = {}
    # A failing storage write is retried with exponential backoff, then the job exits non-zero.
    write_attempts: int = Field(default=5, ge=1)
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)

    def app_id(self, job: str, dataset: str) -> str:
        return self.app_ids.get(f"{job}.{dataset}", f"streamlake.{job}.{dataset}.1")


class RealtimeSettings(Section):
    """The speed layer: 1-minute tumbling-window metrics from Bronze."""

    window: str = "1 minute"
    watermark: str = "2 minutes"
    trigger_interval: str = "5 seconds"


class StreamsSettings(Section):
    """What every long-running streaming job shares."""

    # Each job rewrites <heartbeat_dir>/<job>.<dataset>.json on its queries' events (jobs.stream_heartbeat).
    heartbeat_dir: Path = VAR_DIR / "streams"
    # `streamlake stream health` calls a query stalled after this long without an event: longer than
    # the longest healthy batch, its write retries and their backoff included, and a cold first batch.
    heartbeat_max_age_s: float = Field(default=180.0, gt=0)


class SilverSettings(Section):
    """The Silver batch job's row rules (pipelines.silver_rules)."""

    # Clock skew allowed between a client and the API: an event stamped later than its receive
    # time by more than this is quarantined as future-dated.
    future_tolerance_s: int = Field(default=300, ge=0)
    # The site's pages; an entry ending in `*` matches any page with that prefix. A `user_events`
    # page outside it is a warning: the row is kept and the violation counted.
    site_map: list[str] = ["/", "/home", "/search", "/product/*", "/cart", "/checkout"]


class JvmSettings(Section):
    # Where `make jars` puts the jars fetched by Maven (jvm/*/pom.xml).
    jars_dir: Path = PROJECT_DIR / ".cache" / "jars"

    @property
    def spark_jars(self) -> list[Path]:
        return sorted((self.jars_dir / "spark").glob("*.jar"))

    @property
    def kafka_jars_dir(self) -> Path:
        return self.jars_dir / "kafka"


class ApiSettings(Section):
    """The ingestion API (`streamlake api`): server, request limits, delivery and auth."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    max_batch_events: int = Field(default=500, ge=1)
    # Checked against Content-Length before reading, and while streaming a body without one.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A request waits at most this long for Kafka to store its events, then gets a 503.
    delivery_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # The Retry-After a 503 advises: long enough for a reconnect, short enough not to lose time.
    retry_after_s: int = Field(default=1, ge=0)
    # Records librdkafka may hold unsent; beyond it a request gets a 503 instead of waiting.
    producer_queue_max_messages: int = Field(default=100_000, ge=1)
    # How long the producer holds a partition's batch open for more events (librdkafka `linger.ms`).
    # Every request waits for its batch, so this adds up to that much latency; fewer, larger produce
    # requests cost the broker far less CPU (docs/ingest_api.md, Performance).
    producer_linger_ms: int = Field(default=10, ge=0, le=1000)
    # Bearer tokens accepted on the ingest routes; empty means auth is off. Real tokens come from
    # the environment (STREAMLAKE_API__AUTH_TOKENS='["..."]') or a deployment's config, never git.
    auth_tokens: list[SecretStr] = []
    # Who wrote the record: the envelope's `producer` and the Kafka client.id.
    producer_id: str = Field(default="streamlake-ingest-api", min_length=1, max_length=255)
    access_log: bool = False


class GcsSettings(Section):
    """Google Cloud Storage for `gs://` tables and checkpoints, through Hadoop's GCS connector."""

    # None is Google's own endpoint; an emulator's URL otherwise (conf/gcs-emulator.yaml).
    endpoint: str | None = None
    # `adc`: GOOGLE_APPLICATION_CREDENTIALS or the metadata server; `none`: no auth (an emulator only).
    auth: Literal["adc", "none"] = "adc"
    project_id: str | None = None
    # The connector's server-side move; fake-gcs-server answers it with 400, so the emulator's profile
    # turns it off (renames then copy and delete). Delta's commits never rename on GCS either way.
    move_enabled: bool = True


class ServeSettings(Section):
    """SQL serving (`streamlake serve`): Spark's Thrift server over the lakehouse tables."""

    host: str = "127.0.0.1"
    port: int = Field(default=10000, ge=1, le=65535)
    # None: an embedded Derby metastore in this folder (one server process only); a `thrift://` URI
    # of an external Hive metastore otherwise.
    metastore_dir: Path = VAR_DIR / "serve" / "metastore"
    metastore_uri: str | None = Field(default=None, pattern=r"^thrift://[^/:]+:\d+$")
    # Analysts' SQL may only read (the Java guard in jvm/serving); the server's own registration is exempt.
    read_only: bool = True
    # `password`: users and PBKDF2 hashes from `password_file` (never in the repo); `ldap`: the server's LDAP mode.
    authentication: Literal["none", "password", "ldap"] = "none"
    password_file: Path | None = None
    ldap_url: str | None = None
    ldap_base_dn: str | None = None
    # Tables created after start are registered on SIGHUP, `streamlake serve --refresh` and this often.
    refresh_interval_s: float = Field(default=300.0, gt=0)
    state_file: Path = VAR_DIR / "serve" / "server.json"
    startup_timeout_s: float = Field(default=180.0, gt=0)
    # Extra `hive.server2.*` (or other hiveconf) settings, passed to the server as-is.
    hiveconf: dict[str, str] = {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    env: str = DEFAULT_ENV
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    lakehouse: LakehouseSettings = LakehouseSettings()
    spark: SparkSettings = SparkSettings()
    jvm: JvmSettings = JvmSettings()
    bronze: BronzeSettings = BronzeSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    streams: StreamsSettings = StreamsSettings()
    silver: SilverSettings = SilverSettings()
    api: ApiSettings = ApiSettings()
    gcs: GcsSettings = GcsSettings()
    serve: ServeSettings = ServeSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env = init_settings.init_kwargs.get("env") or os.environ.get(f"{ENV_PREFIX}ENV", DEFAULT_ENV)
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=env_file(env))
        return init_settings, env_settings, yaml_source


def conf_dir() -> Path:
    """Where `<env>.yaml` files live: `conf/`, or STREAMLAKE_CONF_DIR (tests, deployments)."""
    return Path(os.environ.get(f"{ENV_PREFIX}CONF_DIR", CONF_DIR))


def env_file(env: str) -> Path:
    folder = conf_dir()
    path = folder / f"{env}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"env: no config file {path} for env {env!r} (known: {', '.join(known)})")
    return path


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{key}: {error['msg']}{shown}"


def load_settings(env: str | None = None, **overrides: Any) -> Settings:
    """Build settings from all layers; raise ConfigError naming every bad key and value."""
    try:
        if env is not None:
            overrides["env"] = env
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid StreamLake configuration: {problems}") from None


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings (the API and CLI); tests call `load_settings` or clear this cache."""
    return load_settings()
