"""A real SQL server for tests: `streamlake serve` in its own process group, always stopped.

`running_thrift_server(env, tmp_dir)` takes the environment of the settings under test (e.g. a
lakehouse on gs://), so any test can prove the server reads its tables; beeline and PyHive helpers
query it as analysts would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest

from jobs.spark_session import spark_submit_env
from streamlake.ports import free_port

STARTUP_TIMEOUT_S = 240.0
BEELINE = Path(pyspark.__file__).resolve().parent / "bin" / "beeline"
# beeline echoes its prompt before a statement's first output line even with --silent.
_PROMPT = re.compile(r"^\d+: jdbc:hive2://\S+> ")


@dataclass(frozen=True)
class ThriftServer:
    host: str
    port: int
    env: dict[str, str]
    state_file: Path
    log_file: Path
    process: subprocess.Popen

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:hive2://{self.host}:{self.port}/default"


def server_env(env: dict[str, str], tmp_dir: Path, port: int) -> dict[str, str]:
    return {
        **env,
        "STREAMLAKE_SERVE__PORT": str(port),
        "STREAMLAKE_SERVE__METASTORE_DIR": str(tmp_dir / "metastore"),
        "STREAMLAKE_SERVE__STATE_FILE": str(tmp_dir / "server.json"),
        # One small driver: the tests' own Spark session shares the machine.
        "STREAMLAKE_SPARK__DRIVER_MEMORY": env.get("STREAMLAKE_SPARK__DRIVER_MEMORY", "1g"),
    }


@contextmanager
def running_thrift_server(env: dict[str, str], tmp_dir: Path) -> Iterator[ThriftServer]:
    """Start `streamlake serve` on a free port with a Derby metastore under `tmp_dir`; wait until ready."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = server_env(env, tmp_dir, port)
    log_file = tmp_dir / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "streamlake"), "serve"], env=full_env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = ThriftServer("127.0.0.1", port, full_env, tmp_dir / "server.json", log_file, process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.state_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_file.read_text(errors="replace")[-3000:]
                pytest.fail(f"the SQL server (streamlake serve) did not become ready on port {port}: {tail}", pytrace=False)
            time.sleep(0.5)
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM to the whole group (spark-submit's JVM and its Python driver), SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the driver may outlive the JVM it was started by
    except ProcessLookupError:
        pass


def state(server: ThriftServer) -> dict:
    return json.loads(server.state_file.read_text())


def pyhive_cursor(server: ThriftServer, **kwargs):
    from pyhive import hive

    return hive.connect(host=server.host, port=server.port, username=kwargs.pop("username", "analyst"), **kwargs).cursor()


def pyhive_rows(server: ThriftServer, sql: str, **login) -> list[tuple]:
    cursor = pyhive_cursor(server, **login)
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


def beeline(server: ThriftServer, sql: str, *extra: str, user: str = "analyst",
            password: str | None = None) -> subprocess.CompletedProcess:
    """beeline (shipped with pyspark) with csv2 output; it needs this interpreter's bin on PATH."""
    env = spark_submit_env({**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    login = ["-n", user, *(["-p", password] if password is not None else [])]
    command = [str(BEELINE), "-u", server.jdbc_url, *login, "--silent=true", "--showHeader=false",
               "--outputformat=csv2", *extra, "-e", sql]
    # No stdin: a beeline that wants to prompt (e.g. for a missing password) fails instead of waiting.
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, start_new_session=True,
                          stdin=subprocess.DEVNULL)


def beeline_rows(server: ThriftServer, sql: str, **login) -> list[list[str]]:
    result = beeline(server, sql, **login)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (_PROMPT.sub("", line) for line in result.stdout.splitlines())
    return [line.split(",") for line in lines if line.strip()]
