"""A single-node Apache Kafka broker (KRaft, combined broker+controller) run from Maven-fetched jars.

There is no Docker engine and Debian has no Kafka, so StreamLake starts the broker itself. Storage is
formatted on first start; the broker listens on loopback only; topic auto-creation is off so that a
typo never creates a topic. Owns the broker process only: topics live in `streamlake.topics`.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from conf.settings import Settings

log = logging.getLogger(__name__)

_KAFKA_MAIN = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The broker could not be started or stopped; the message carries its log tail."""


@dataclass(frozen=True)
class BrokerStatus:
    up: bool
    bootstrap: str
    pid: int | None
    detail: str

    def __str__(self) -> str:
        state = "up" if self.up else "down"
        pid = f" pid={self.pid}" if self.pid else ""
        return f"kafka broker {state} bootstrap={self.bootstrap}{pid} ({self.detail})"


def _die_with_parent() -> None:
    # Tests start brokers tied to the test process: if pytest is killed, the broker goes too.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def new_cluster_id() -> str:
    """A KRaft cluster id (a UUID in URL-safe base64). One starting with '-' would be read by the
    storage tool as an option (1 in 64 of them), so those are drawn again."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class LocalBroker:
    data_dir: Path
    jars_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    startup_timeout_s: float = 90.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBroker:
        broker = settings.kafka.local_broker
        return cls(
            data_dir=broker.data_dir,
            jars_dir=settings.jvm.kafka_jars_dir,
            host=broker.host,
            port=broker.port,
            controller_port=broker.controller_port,
            heap=broker.heap,
            startup_timeout_s=broker.startup_timeout_s,
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def _properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    # -- state -------------------------------------------------------------------------------

    def _running_pid(self) -> int | None:
        """The pid of this data dir's broker if it is alive (guarding against pid reuse)."""
        try:
            pid = int(self._pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        if _KAFKA_MAIN in cmdline and str(self._properties_file) in cmdline:
            return pid
        return None

    def answers_metadata(self, timeout_s: float = 3.0) -> bool:
        # A probe of a broker that may be down: its connection errors are expected, not news.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, "socket.connection.setup.timeout.ms": 2000})
        try:
            admin.list_topics(timeout=timeout_s)
            return True
        except KafkaException:
            return False

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        if pid is None:
            return BrokerStatus(False, self.bootstrap, None, f"no broker process for {self.data_dir}")
        if not self.answers_metadata():
            return BrokerStatus(False, self.bootstrap, pid, "process alive but not answering metadata")
        return BrokerStatus(True, self.bootstrap, pid, "answering metadata requests")

    # -- lifecycle ---------------------------------------------------------------------------

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java not found on PATH; Kafka needs a Java 17 runtime")
        if not any(self.jars_dir.glob("kafka_*.jar")):
            raise BrokerError(f"no Kafka jars in {self.jars_dir}; run `make jars` first")
        log4j = Path(__file__).resolve().parent.parent / "conf" / "kafka-log4j2.properties"
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{self.jars_dir}/*",
            main_class,
            *args,
        ]

    def _write_properties(self) -> None:
        listeners = f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            # A typo in a topic name must fail, never create a topic.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{key}={value}\n" for key, value in properties.items())
        self._properties_file.write_text(text)

    def _format_storage_once(self) -> None:
        if (self._log_dirs / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        command = self._java_command(
            _STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(self._properties_file), "--ignore-formatted"
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self._log_dirs} failed:\n{result.stdout}{result.stderr}")
        log.info("formatted kafka storage", extra={"log_dirs": str(self._log_dirs), "cluster_id": cluster_id})

    def start(self, *, tie_to_parent: bool = False, on_wait: Callable[[float], None] | None = None) -> BrokerStatus:
        """Start the broker unless it already runs; wait until it answers metadata requests."""
        current = self.status()
        if current.pid is not None:
            if not current.up:
                self._wait_until_up(current.pid, on_wait, is_alive=lambda: self._running_pid() == current.pid)
            return self.status()
        self._write_properties()
        self._format_storage_once()
        with self.log_file.open("ab") as out:
            process = subprocess.Popen(
                self._java_command(_KAFKA_MAIN, str(self._properties_file)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if tie_to_parent else None,
            )
        self._pid_file.write_text(f"{process.pid}\n")
        # Our own child: ask the process itself. The pid-file + /proc cmdline check once missed a
        # broker that was still starting (CI: "exited during start-up" with an empty log, while the
        # JVM went on to start and was left running).
        self._wait_until_up(process.pid, on_wait, is_alive=lambda: process.poll() is None)
        return self.status()

    def _wait_until_up(self, pid: int, on_wait: Callable[[float], None] | None, is_alive: Callable[[], bool]) -> None:
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if not is_alive():
                self._pid_file.unlink(missing_ok=True)
                raise BrokerError(f"kafka broker exited during start-up; log tail:\n{self.log_tail()}")
            if self.answers_metadata(timeout_s=2.0):
                log.info("kafka broker up", extra={"bootstrap": self.bootstrap, "pid": pid, "seconds": round(elapsed, 1)})
                return
            if elapsed > self.startup_timeout_s:
                self._terminate(pid, timeout_s=10)
                raise BrokerError(
                    f"kafka broker did not answer metadata at {self.bootstrap} within "
                    f"{self.startup_timeout_s:.0f}s; log tail:\n{self.log_tail()}"
                )
            if on_wait:
                on_wait(elapsed)
            time.sleep(0.5)

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Gracefully stop the broker (SIGTERM: controlled shutdown). Returns False if none ran."""
        pid = self._running_pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        self._terminate(pid, timeout_s)
        return True

    def _terminate(self, pid: int, timeout_s: float) -> None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._running_pid() == pid:
            time.sleep(0.2)
        if self._running_pid() == pid:
            log.warning("kafka broker ignored SIGTERM; killing it", extra={"pid": pid})
            os.kill(pid, signal.SIGKILL)
            while self._running_pid() == pid:
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no broker log)"
