"""The local KRaft broker through `streamlake kafka start|status|stop`, on its own data dir and ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamlake.ports import free_port


def _pids_of(properties_file: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "kafka.Kafka" in cmdline and str(properties_file) in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.fixture
def broker_env(tmp_path: Path):
    port, controller_port = free_port(), free_port()
    env = {
        **os.environ,
        "STREAMLAKE_KAFKA__LOCAL_BROKER__DATA_DIR": str(tmp_path / "kafka"),
        "STREAMLAKE_KAFKA__LOCAL_BROKER__PORT": str(port),
        "STREAMLAKE_KAFKA__LOCAL_BROKER__CONTROLLER_PORT": str(controller_port),
        "STREAMLAKE_KAFKA__LOCAL_BROKER__HEAP": "256m",
    }
    yield env, f"127.0.0.1:{port}", tmp_path / "kafka" / "server.properties"
    # Whatever the test did, leave no broker behind.
    subprocess.run([sys.executable, "-m", "streamlake", "kafka", "stop"], env=env, capture_output=True, timeout=120)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamlake", "kafka", *args], env=env, capture_output=True, text=True, timeout=180)


def test_status_start_twice_and_stop(broker_env) -> None:
    env, bootstrap, properties = broker_env

    down = _cli(env, "status")
    assert (down.returncode, down.stdout.split(" (")[0]) == (1, f"kafka broker down bootstrap={bootstrap}")

    started = _cli(env, "start")
    assert started.returncode == 0, started.stderr
    [pid] = _pids_of(properties)
    assert started.stdout.strip() == f"kafka broker up bootstrap={bootstrap} pid={pid} (answering metadata requests)"

    again = _cli(env, "start")
    assert again.returncode == 0, again.stderr
    assert _pids_of(properties) == [pid]  # starting twice does not start two brokers

    up = _cli(env, "status")
    assert (up.returncode, up.stdout.strip()) == (0, started.stdout.strip())

    stopped = _cli(env, "stop")
    assert (stopped.returncode, stopped.stdout.strip()) == (0, f"kafka broker stopped ({bootstrap})")
    assert _pids_of(properties) == []
    assert _cli(env, "status").returncode == 1


def test_start_failure_says_so_with_the_broker_log(broker_env) -> None:
    env, bootstrap, properties = broker_env
    port = int(bootstrap.rsplit(":", 1)[1])
    with socket.socket() as squatter:  # another program already holds the broker's port
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = _cli(env, "start")
    assert result.returncode == 1
    assert result.stderr.startswith("kafka broker exited during start-up; log tail:\n")
    assert "Address already in use" in result.stderr
    assert _pids_of(properties) == []


def test_cluster_ids_never_look_like_an_option() -> None:
    from streamlake.kafka_broker import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]  # without the redraw, ~31 of these start with '-'
    assert [i for i in ids if i.startswith("-")] == []
    assert {len(i) for i in ids} == {22}
