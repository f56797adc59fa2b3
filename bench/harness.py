"""What every benchmark shares: a private broker, result files and the printed table.

A benchmark module `bench/bench_<name>.py` defines `run(ctx: BenchContext) -> list[Measurement]`.
Each run writes `bench/results/<name>.json` and prints a table with the baseline ratio.
"""

from __future__ import annotations

import json
import platform
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from conf.settings import Settings, load_settings
from streamlake.kafka_broker import LocalBroker
from streamlake.ports import free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Measurement:
    name: str
    value: float
    unit: str
    baseline: str | None = None  # name of the measurement this one is compared with
    target: str | None = None  # the figure aimed at, as text ("ratio >= 0.6")
    details: dict = field(default_factory=dict)


@dataclass
class BenchContext:
    settings: Settings
    workdir: Path


def _tree_usage(pid: int) -> tuple[dict[int, float], int, int]:
    """User + system CPU seconds, with those of the children it waited for, of a process and of each
    process under it (whichever thread started them), by pid; their resident memory summed (RSS:
    pages forked processes share count in each) and their proportional set size summed (PSS: a
    shared page split between its sharers, so the sum is what the tree holds)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}, 0, 0
    cpu, rss, pss = {}, 0, 0
    for process in tree:
        try:
            with process.oneshot():
                times, memory = process.cpu_times(), process.memory_full_info()
        except psutil.NoSuchProcess:  # ended meanwhile
            continue
        cpu[process.pid] = times.user + times.system + times.children_user + times.children_system
        rss += memory.rss
        pss += memory.pss
    return cpu, rss, pss


def _tree_cpu_by_pid(pid: int) -> dict[int, float]:
    return _tree_usage(pid)[0]


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and every process under it now (uvicorn's workers, a broker).

    A process that ended counts only if its parent waited for it. Across a span in which processes
    may end unwaited for (Spark's Python workers), use `TreeCpuMeter`."""
    return sum(_tree_cpu_by_pid(pid).values())


class TreeCpuMeter:
    """CPU seconds a process tree spends over a `with` block, processes that end during it included,
    and the tree's peak memory (`peak_rss` and `peak_pss`, bytes, as `_tree_usage` counts them;
    sampled, so a peak shorter than `interval_s` can be missed).

    PySpark's daemon ignores SIGCHLD, so the kernel throws away the CPU times of the Python workers it
    ends (Spark ends a worker idle for a minute), and no parent's children_* times hold them: a
    before/after difference would lose a worker's whole lifetime, even turn negative. Sampled every
    `interval_s`, a process that ended counts at its last sample; only what a busy process spent after
    that, at most `interval_s` of it, is lost (Spark's idle workers spend nothing).
    """

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.spent = 0.0
        self.peak_rss = 0
        self.peak_pss = 0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_until_done, daemon=True)

    def __enter__(self) -> TreeCpuMeter:
        self._first = _tree_cpu_by_pid(self.pid)
        self._last = dict(self._first)
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._sampler.join()
        self._sample()
        self.spent = sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())

    def _sample(self) -> None:
        cpu, rss, pss = _tree_usage(self.pid)
        self._last.update(cpu)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def _sample_until_done(self) -> None:
        while not self._done.wait(self.interval_s):
            self._sample()


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, all cores: steal is the time the
    hypervisor gave our virtual CPUs to someone else."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq, times.steal


@contextmanager
def bench_context() -> Iterator[BenchContext]:
    """A private broker on free loopback ports and a scratch lakehouse, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="streamlake-bench-") as tmp:
        workdir = Path(tmp)
        base = load_settings()
        broker = LocalBroker(
            data_dir=workdir / "kafka", jars_dir=base.jvm.kafka_jars_dir, port=free_port(),
            controller_port=free_port(), heap="1g",
        )
        broker.start(tie_to_parent=True)
        try:
            settings = load_settings(
                kafka={"bootstrap_servers": broker.bootstrap},
                lakehouse={"root": (workdir / "lakehouse").as_uri()},
            )
            yield BenchContext(settings, workdir)
        finally:
            broker.stop()


def ratio_rows(measurements: list[Measurement]) -> list[tuple[Measurement, float | None]]:
    by_name = {m.name: m for m in measurements}
    rows = []
    for m in measurements:
        base = by_name.get(m.baseline) if m.baseline else None
        rows.append((m, m.value / base.value if base and base.value else None))
    return rows


def report(bench_name: str, measurements: list[Measurement]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    rows = ratio_rows(measurements)
    payload = {
        "benchmark": bench_name,
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "measurements": [{**asdict(m), "ratio_to_baseline": r} for m, r in rows],
    }
    path = RESULTS_DIR / f"{bench_name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\n== {bench_name} ==")
    print(f"{'measurement':44} {'value':>14} {'unit':10} {'vs baseline':>12}  target")
    for m, r in rows:
        ratio = f"{r:.2f}x" if r is not None else ""
        print(f"{m.name:44} {m.value:14.1f} {m.unit:10} {ratio:>12}  {m.target or ''}")
    print(f"results: {path}")
    return path
