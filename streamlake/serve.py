"""Launching the SQL server (`streamlake serve`) and asking a running one to register new tables.

The server itself is `jobs/thrift_server.py`, a spark-submit driver; this module builds its command
line (Delta's and StreamLake's serving jars also on the driver class path, where the Thrift
server's sessions look up the Delta catalog) and talks to a running server through its state file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from conf.settings import PROJECT_DIR, ConfigError, Settings
from jobs.spark_session import spark_jars, spark_submit_command

SERVER_JOB = PROJECT_DIR / "jobs" / "thrift_server.py"


def serving_jar(settings: Settings) -> Path:
    jar = settings.jvm.jars_dir / "serving" / "streamlake-serving.jar"
    if not jar.is_file():
        raise ConfigError(f"jvm.jars_dir: no serving jar at {jar}; run `make jars`")
    return jar


def server_command(settings: Settings, env: str | None = None) -> list[str]:
    jars = [*spark_jars(settings), serving_jar(settings)]
    command = spark_submit_command(settings, SERVER_JOB, *(["--env", env] if env else []))
    jars_at = command.index("--jars")
    command[jars_at + 1] = ",".join(str(j) for j in jars)
    # Without the driver class path a client's session fails: "Cannot find catalog plugin class ... DeltaCatalog".
    return [*command[:jars_at], "--driver-class-path", os.pathsep.join(str(j) for j in jars), *command[jars_at:]]


@dataclass(frozen=True)
class RefreshResult:
    running: bool
    tables: list[str]
    created: list[str]


def _read_state(path: Path) -> dict | None:
    """The state of a server alive on this machine, or None."""
    try:
        state = json.loads(path.read_text())
        if state["machine"] != socket.gethostname():
            return None  # its pid means nothing here; that server registers on its own interval
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no file, half a file, or a server that died without removing it
    return state


def refresh(settings: Settings, timeout_s: float = 300.0) -> RefreshResult:
    """SIGHUP the running server, wait until its registration pass has finished, say what it registered."""
    state = _read_state(settings.serve.state_file)
    if state is None:
        return RefreshResult(False, [], [])
    before = state.get("registered_at")
    os.kill(int(state["pid"]), signal.SIGHUP)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = _read_state(settings.serve.state_file)
        if current is None:
            raise RuntimeError("the SQL server stopped during the refresh")
        if current.get("registered_at") != before:
            return RefreshResult(True, current.get("tables", []), current.get("created", []))
    raise TimeoutError(f"the SQL server (pid {state['pid']}) did not finish registering within {timeout_s:.0f} s")
