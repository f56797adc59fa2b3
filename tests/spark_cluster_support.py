"""A real Spark standalone cluster on loopback for the tests: one master and workers started with
the pyspark distribution's `spark-class`, each in its own process group, always stopped.

The workers' executors run Python with an interpreter that CANNOT import the project: a wrapper
around this venv's Python whose `sitecustomize` drops the project folder (the editable install's
`.pth` entry) from `sys.path`. They keep every third-party package, as a cluster node built from
the lock file would, so a job works there only if it ships the project as py_files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conf.settings import PROJECT_DIR
from jobs.spark_session import spark_submit_env
from streamlake.ports import free_port

WORKER_CORES = 2
WORKER_MEMORY = "2g"
START_TIMEOUT_S = 120.0
_SITECUSTOMIZE = """\
import os, sys
# A cluster node without the project: its folder (added by the editable install) is not importable.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != {project!r}]
"""


def executor_python(folder: Path) -> Path:
    """A wrapper script running this venv's Python without the project on its path."""
    site = folder / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(project=str(PROJECT_DIR.resolve())))
    wrapper = folder / "python"
    python = Path(spark_submit_env({})["PYSPARK_PYTHON"])
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{site}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{python}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@dataclass
class _Daemon:
    name: str
    process: subprocess.Popen
    log_path: Path
    port: int = 0

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """kill -9 of the whole group: the JVM and, for a worker, its executors and their Python workers."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)


@dataclass
class SparkCluster:
    """A master (`url`, its web UI's JSON at `json_url`) and its workers, all on 127.0.0.1."""

    folder: Path
    master: _Daemon | None = None
    url: str = ""
    webui_port: int = 0
    workers: list[_Daemon] = field(default_factory=list)
    python: Path = Path()

    @property
    def json_url(self) -> str:
        return f"http://127.0.0.1:{self.webui_port}/json"

    def state(self) -> dict:
        with urllib.request.urlopen(self.json_url, timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> list[dict]:
        return [w for w in self.state()["workers"] if w["state"] == "ALIVE"]

    def _spawn(self, name: str, *args: str, port: int = 0) -> _Daemon:
        env = spark_submit_env(dict(os.environ))
        spark_class = Path(env["SPARK_HOME"]) / "bin" / "spark-class"
        env.update({"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(self.folder / "logs"), "SPARK_NO_DAEMONIZE": "1"})
        log_path = self.folder / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen([str(spark_class), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=self.folder)
        return _Daemon(name, process, log_path, port)

    def start_master(self) -> None:
        port, self.webui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{port}"
        self.master = self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                                  "--webui-port", str(self.webui_port))
        self._wait(lambda: self.state()["status"] == "ALIVE", "the master to be ALIVE", self.master)

    def start_worker(self) -> _Daemon:
        """A new worker (free ports, its own work dir); returns once the master lists it ALIVE."""
        name = f"worker-{len(self.workers)}"
        work_dir = self.folder / name
        work_dir.mkdir()
        port = free_port()
        worker = self._spawn(name, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(port),
                             "--webui-port", str(free_port()), "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY,
                             "--work-dir", str(work_dir), self.url, port=port)
        self.workers.append(worker)
        self._wait(lambda: any(w["port"] == port for w in self.alive_workers()), f"{name} to register with the master", worker)
        return worker

    def kill_worker(self, worker: _Daemon) -> None:
        """kill -9 of the worker's group, as a lost node: its executors die with it, unannounced."""
        worker.kill()

    def replace_worker(self, worker: _Daemon) -> _Daemon:
        self.kill_worker(worker)
        return self.start_worker()

    def _wait(self, condition, what: str, daemon: _Daemon) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if daemon.process.poll() is not None:
                pytest.fail(f"Spark standalone {daemon.name} exited ({daemon.process.returncode}) before {what}:\n{daemon.tail()}",
                            pytrace=False)
            try:
                if condition():
                    return
            except OSError:  # the web UI is not up yet
                pass
            time.sleep(0.5)
        pytest.fail(f"timed out after {START_TIMEOUT_S}s waiting for {what}:\n{daemon.tail()}", pytrace=False)

    def stop(self) -> None:
        for daemon in [*self.workers, *([self.master] if self.master else [])]:
            daemon.kill()


@contextmanager
def running_spark_cluster(folder: Path) -> Iterator[SparkCluster]:
    """A master and one worker for the block; every process is killed at its end, even on failure."""
    folder.mkdir(parents=True, exist_ok=True)
    cluster = SparkCluster(folder, python=executor_python(folder / "executor-python"))
    try:
        cluster.start_master()
        cluster.start_worker()
        yield cluster
    finally:
        cluster.stop()
