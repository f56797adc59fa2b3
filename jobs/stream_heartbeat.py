"""A streaming job's heartbeat: the last word each of its queries said, in a local file.

A long-running job can be alive and stuck (a store retried for minutes, Kafka unreachable): its
process is up, its checkpoint does not move. Each query's listener events (started, a batch's
progress, idle while waiting for data, terminated) rewrite `<streams.heartbeat_dir>/<job>.<dataset>.json`,
and `streamlake stream health` (a container's health check) reads it. Spark reports an idle query
every `spark.sql.streaming.noDataProgressEventInterval` (10 s by default), so a healthy query never
goes quiet for long, with or without traffic.

No Spark here: the health check reads the file without starting a JVM.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from conf.settings import Settings

STARTED, PROGRESS, IDLE, TERMINATED = "started", "progress", "idle", "terminated"
log = logging.getLogger("streamlake.jobs")


def heartbeat_path(settings: Settings, job: str, dataset: str) -> Path:
    return settings.streams.heartbeat_dir / f"{job}.{dataset}.json"


class Heartbeat:
    """Writes a job's heartbeat file, replaced atomically so a reader never sees half of it."""

    def __init__(self, path: Path, job: str, dataset: str) -> None:
        self.path = path
        self._state = {"job": job, "dataset": dataset, "pid": os.getpid(), "queries": {}}
        self._lock = threading.Lock()
        self._failing = False  # the last write failed: logged once per run of failures, not per event
        try:
            path.unlink(missing_ok=True)  # an earlier run's last word is not this run's
        except OSError as exc:  # the next beat will say so again, and be logged
            log.warning("heartbeat not cleared", extra={"path": str(path), "error": str(exc)})

    def beat(self, query: str, event: str, batch_id: int | None = None) -> None:
        """Record `query`'s event. A file that cannot be written is logged, never raised: the stream
        matters more than its health check, which then reports it silent."""
        with self._lock:
            self._state["queries"][query] = {"event": event, "at": time.time(), "batch_id": batch_id}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                partial = self.path.with_name(self.path.name + ".tmp")
                partial.write_text(json.dumps(self._state, indent=1))
                partial.replace(self.path)
            except OSError as exc:
                if not self._failing:
                    log.warning("heartbeat not written", extra={"path": str(self.path), "query": query, "error": str(exc)})
                self._failing = True
                return
            if self._failing:
                log.info("heartbeat written again", extra={"path": str(self.path), "query": query})
                self._failing = False


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


def check_heartbeat(path: Path, max_age_s: float, now: float | None = None) -> Health:
    """Healthy when the file names at least one query and every query spoke within `max_age_s`
    and has not terminated; the detail names each query with its last event and age."""
    now = time.time() if now is None else now
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return Health(False, f"no heartbeat at {path}: the job has not started a query on this machine")
    except (OSError, ValueError) as exc:
        return Health(False, f"unreadable heartbeat {path}: {exc}")
    queries = state.get("queries") or {}
    if not queries:
        return Health(False, f"heartbeat {path} names no query")
    problems, seen = [], []
    for name, last in sorted(queries.items()):
        age = now - last["at"]
        said = f"{name}: {last['event']} {age:.0f} s ago" + (f" (batch {last['batch_id']})" if last.get("batch_id") is not None else "")
        seen.append(said)
        if last["event"] == TERMINATED:
            problems.append(f"{name} terminated {age:.0f} s ago")
        elif age > max_age_s:
            problems.append(f"{name} silent for {age:.0f} s (more than {max_age_s:g} s; last: {last['event']})")
    if problems:
        return Health(False, "; ".join(problems))
    return Health(True, "; ".join(seen))
