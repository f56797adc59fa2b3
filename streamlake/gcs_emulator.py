"""fake-gcs-server on loopback: a local Google Cloud Storage for `gs://` lakehouses (tests, try-outs).

The binary is built by `make gcs-emulator` (under `.tools/`, git-ignored). Objects live in memory or
under a folder; the server runs in its own process group and is stopped with it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from conf.settings import PROJECT_DIR

log = logging.getLogger(__name__)

FAKE_GCS_BINARY = PROJECT_DIR / ".tools" / "go" / "bin" / "fake-gcs-server"


class EmulatorError(RuntimeError):
    """fake-gcs-server is missing, could not start, or refused a request."""


@dataclass
class GcsEmulator:
    """One fake-gcs-server: `start()`, `create_bucket()`, `stop()` (or use it as a context manager)."""

    port: int
    log_file: Path
    # None keeps objects in memory; a folder keeps them across restarts of the emulator.
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    binary: Path = FAKE_GCS_BINARY
    startup_timeout_s: float = 30.0
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        command = [str(self.binary), "-scheme", "http", "-host", self.host, "-port", str(self.port),
                   # Resumable uploads hand back a URL the connector follows: it must name this address.
                   "-public-host", f"{self.host}:{self.port}", "-external-url", self.endpoint,
                   "-log-level", "warn"]
        if self.data_dir is None:
            return [*command, "-backend", "memory"]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [*command, "-backend", "filesystem", "-filesystem-root", str(self.data_dir)]

    def start(self) -> GcsEmulator:
        if not self.binary.is_file():
            raise EmulatorError(f"no fake-gcs-server at {self.binary}; run `make gcs-emulator`")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        while not self._answers():
            if self._process.poll() is not None:
                raise EmulatorError(f"fake-gcs-server exited during start-up; log tail:\n{self.log_tail()}")
            if time.monotonic() - started > self.startup_timeout_s:
                self.stop()
                raise EmulatorError(f"fake-gcs-server did not answer at {self.endpoint} within "
                                    f"{self.startup_timeout_s:.0f}s; log tail:\n{self.log_tail()}")
            time.sleep(0.2)
        log.info("gcs emulator up", extra={"endpoint": self.endpoint, "pid": self._process.pid,
                                           "seconds": round(time.monotonic() - started, 1)})
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint}/storage/v1/b", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def create_bucket(self, name: str) -> None:
        """Create a bucket; one that already exists is fine."""
        response = httpx.post(f"{self.endpoint}/storage/v1/b", json={"name": name}, timeout=10.0)
        if response.status_code not in (200, 409):
            raise EmulatorError(f"creating bucket {name!r} failed: {response.status_code} {response.text}")

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object name under a prefix, through the JSON API (what the connector wrote, as stored)."""
        names: list[str] = []
        params = {"prefix": prefix}
        while True:
            response = httpx.get(f"{self.endpoint}/storage/v1/b/{bucket}/o", params=params, timeout=10.0)
            if response.status_code != 200:
                raise EmulatorError(f"listing gs://{bucket}/{prefix} failed: {response.status_code} {response.text}")
            body = response.json()
            names += [item["name"] for item in body.get("items", [])]
            if not body.get("nextPageToken"):
                return names
            params["pageToken"] = body["nextPageToken"]

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.info("gcs emulator stopped", extra={"endpoint": self.endpoint})

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no emulator log)"

    def __enter__(self) -> GcsEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
