"""Bronze benchmark: Kafka -> Bronze throughput against a raw copy, and API-to-Bronze latency.

1. Throughput on local[2], 1% poison pills: the Bronze query (parse, validate, DLQ, idempotent
   Delta append) against a baseline query in the same session that copies the raw Kafka rows to a
   Delta table with no parsing, validation or DLQ (the engine's ceiling here). Both read a backlog
   with the configured batch size (`bronze.max_offsets_per_trigger`), as Bronze catching up would.
   Sustained events/s is what Spark's own progress reports say of the run's batches: their input
   rows over the time their triggers took, every batch counted, the last short one too. What comes
   before the first batch is start-up, reported apart: Bronze creates its table and checks its
   checkpoint against it; the copy's table is created up front the same way, so that neither
   query's batches pay for a table's creation. Each query's median over the measured rounds
   counts (see MEASURED_ROUNDS). Target ratio >= 0.6. Each run also records the CPU
   time of Spark's JVM and its Python workers and the CPU the VM's host stole meanwhile: on a
   shared host the wall-clock ratio moves with the neighbours, the CPU per event much less.
2. End-to-end latency at a steady 1,000 events/s: from the API's 202 (client clock) to the Delta
   commit that made the event visible in Bronze (commit timestamp from `_delta_log`), with the
   Bronze job running as spark-submit. Steady means after a warm-up at the same rate: a young job
   pays for JVM and Python worker start-up and for the JIT (its batches take about twice as long
   in its first minute here) and carries the backlog that builds meanwhile; only events sent after
   the warm-up count. The warm-up's own latencies are reported too. Target p99 < 10 s.
3. Bytes per event on disk: the Parquet files of the last round's Bronze table over its rows,
   against the raw copy's over its rows (the Kafka rows as they are: key, value, headers,
   coordinates, written by the same session, so with the lakehouse's codec and level, and without
   Bronze's table properties). The ratio is what Bronze's typed columns (ids, timestamps, envelope
   metadata, the payload's fields) cost over landing the records as-is. Each column's compressed
   bytes per event are in the details. Target <= 130 bytes per event. Read from the files' footers
   after the runs: no time of its own.
4. CPU per event, warm: the CPU of the measured rounds of 1. over their events, next to the raw
   copy's. Target <= 80 us per event.
5. Cold start, as an operator launches the job: `spark-submit` of the Bronze job (`--available-now`,
   every default) on a fresh lakehouse over the same backlog, against the raw copy as a job of its
   own (`bench/raw_copy_stream.py`), alternated: launch to the Delta commit of the first batch
   (target <= 10 s), that batch's own duration, launch to exit, the process tree's CPU per event and
   its peak resident memory (JVM, Python driver, Python workers), and the data files each batch
   added. Files per batch are also counted in the latency run's steady stream (2.), and scaled to
   a day of steady load at the default trigger.

Sizes: BENCH_BRONZE_EVENTS (default 300000), BENCH_BRONZE_ROUNDS (rounds measured after two warm-up
rounds, default 3), BENCH_BRONZE_COLD_ROUNDS (launches of each job, default 2), BENCH_E2E_SECONDS
(default 40), BENCH_E2E_WARMUP_SECONDS (default 90).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pyarrow.parquet as pq
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from bench.bench_ingest_api import uvicorn_server
from bench.harness import BenchContext, Measurement, TreeCpuMeter, machine_cpu_s
from bench.raw_copy_stream import start_raw_copy_query
from conf.settings import Settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from jobs.bronze_stream import start_bronze_query
from jobs.kafka_produce import produce_all
from jobs.spark_session import build_spark_session, spark_submit_command, spark_submit_env
from streamlake import synthetic
from streamlake.topics import apply_topics, declared_topics

EVENTS = int(os.environ.get("BENCH_BRONZE_EVENTS", "300000"))
# A JVM keeps compiling for minutes: both queries' first runs are far slower than their later ones
# (docs/decisions.md). The first two rounds warm the JVM and the Python workers up and are
# reported, not counted: a job runs for days, so warm against warm is the comparison. Of the
# measured rounds, each query's median counts: the host's neighbours take a share of our CPU that
# changes from one run to the next (one of a query's runs took twice another's within minutes),
# and a best run would compare whichever query got the luckiest minute.
WARMUP_ROUNDS = 2
MEASURED_ROUNDS = int(os.environ.get("BENCH_BRONZE_ROUNDS", "3"))
E2E_SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "40"))
E2E_WARMUP_SECONDS = float(os.environ.get("BENCH_E2E_WARMUP_SECONDS", "90"))
E2E_RATE = 1000
E2E_BATCH = 20  # events per API request: 50 requests/s make 1,000 events/s
E2E_PREWARM_REQUESTS = 50
POISON_SHARE = 0.01
JOB = Path(__file__).resolve().parent.parent / "jobs" / "bronze_stream.py"
RAW_COPY_JOB = Path(__file__).resolve().parent / "raw_copy_stream.py"
# Each cold run is a whole spark-submit (JVM start, session, table, the backlog); the copy job's and
# Bronze's alternate, so the host's load falls on both.
COLD_ROUNDS = int(os.environ.get("BENCH_BRONZE_COLD_ROUNDS", "2"))


def produce_with_poison(settings: Settings, dataset: str, count: int) -> None:
    contract = get_contract(dataset)
    producer = Producer({**settings.kafka.producer_config(client_id="bench"), "linger.ms": 50, "batch.size": 1_000_000})
    rng = random.Random(1)

    def records():
        for event in synthetic.events(dataset, count, seed=23):
            key, value, headers = wrap(contract, event, "bench")
            if rng.random() < POISON_SHARE:
                value = value[: len(value) // 2]  # a truncated record: malformed JSON
            yield key, value, headers

    produce_all(producer, contract.raw_topic, records())
    assert producer.flush(120) == 0


@dataclass(frozen=True)
class RunCost:
    seconds: float  # the whole run: start-up, then every batch
    batch_seconds: float  # the triggers of its batches, as Spark's progress reports time them
    rows: int  # input rows of its batches
    cpu_seconds: float  # Spark's JVM and its Python workers
    steal_seconds: float  # CPU the VM's host took from it meanwhile, all cores

    @property
    def sustained_rate(self) -> float:
        return self.rows / self.batch_seconds


class SparkCpu:
    """CPU time of a local Spark: its JVM and every process under it (the Python workers)."""

    def __init__(self, spark: SparkSession) -> None:
        self.jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()

    def cost_of(self, start: Callable[[], StreamingQuery]) -> RunCost:
        """Run a query started by `start()` to its end (availableNow) and say what it took."""
        (_, steal), started = machine_cpu_s(), time.perf_counter()
        with TreeCpuMeter(self.jvm_pid) as cpu:
            query = start()
            query.awaitTermination()
        if query.exception() is not None:
            raise RuntimeError(f"query failed: {query.exception()}")
        batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
        return RunCost(time.perf_counter() - started, sum(p["durationMs"]["triggerExecution"] for p in batches) / 1000,
                       sum(p["numInputRows"] for p in batches), cpu.spent, machine_cpu_s()[1] - steal)


def raw_copy_run(spark: SparkSession, settings: Settings, topic: str, run: int, meter: SparkCpu) -> RunCost:
    """The baseline: Kafka rows straight into Delta, same source options and batch sizes."""
    root = settings.lakehouse.root
    return meter.cost_of(lambda: start_raw_copy_query(spark, settings, topic, f"{root}/raw_copy_{run}",
                                                      f"{root}/_checkpoints/raw_copy_{run}"))


def bronze_run(spark: SparkSession, settings: Settings, dataset: str, run: int, meter: SparkCpu) -> RunCost:
    run_settings = settings.model_copy(update={
        "lakehouse": settings.lakehouse.model_copy(update={"root": f"{settings.lakehouse.root}/bronze_run_{run}"}),
    })
    return meter.cost_of(lambda: start_bronze_query(spark, run_settings, dataset, available_now=True))


async def _paced_load(port: int, bodies: list[bytes], rate_per_s: float) -> list[tuple[int, list[str], float]]:
    """POST batches at a fixed rate; return (request index, ingestion_ids, time of the 202) per request."""
    answered: list[tuple[int, list[str], float]] = []
    failures = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def send(index: int, body: bytes) -> None:
            nonlocal failures
            response = await client.post("/v1/datasets/orders/events:batch", content=body,
                                         headers={"content-type": "application/json"})
            if response.status_code != 202:
                failures += 1
                return
            answered.append((index, [e["ingestion_id"] for e in response.json()["events"]], time.time()))

        tasks = []
        started = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = started + i / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i, body)))
        await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{failures} API requests were not accepted during the latency run")
    return answered


class BronzeCommits:
    """What the Bronze table's Delta log says, read straight from `_delta_log` (local table).

    The bench reads the log with plain Python rather than a SparkSession: a second JVM polling the
    table would take CPU from the job whose latency is being measured.
    """

    def __init__(self, table_uri: str) -> None:
        self.table = Path(urlparse(table_uri).path)

    def commits(self) -> list[tuple[float, list[dict]]]:
        """(commit time in s, add actions) per commit, in version order."""
        commits = []
        for log_file in sorted((self.table / "_delta_log").glob("*.json")):
            actions = [json.loads(line) for line in log_file.read_text().splitlines() if line]
            committed_ms = next(a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a)
            commits.append((committed_ms / 1000, [a["add"] for a in actions if "add" in a]))
        return commits

    def rows(self) -> int:
        return sum(json.loads(add["stats"])["numRecords"] for _, adds in self.commits() for add in adds)

    def commit_time_by_ingestion_id(self) -> dict[str, float]:
        """For each Bronze row, the time of the Delta commit that made it visible."""
        committed: dict[str, float] = {}
        for commit_s, adds in self.commits():
            for add in adds:
                data_file = self.table / unquote(add["path"])
                for ingestion_id in pq.read_table(data_file, columns=["ingestion_id"]).column(0).to_pylist():
                    committed[ingestion_id] = commit_s
        return committed

    def wait_for_rows(self, rows: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while (found := self.rows()) < rows:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Bronze has {found} of {rows} accepted events after {timeout_s:g} s")
            time.sleep(0.5)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def e2e_latency(ctx: BenchContext) -> tuple[list[float], list[float], list[int], list[int]]:
    """(warm-up latencies, steady latencies) in seconds, one per event, the job's batch durations (ms)
    and the data files each of its commits added."""
    settings = ctx.settings
    env = spark_submit_env({
        **os.environ,
        "STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap,
        "STREAMLAKE_LAKEHOUSE__ROOT": f"{settings.lakehouse.root}/e2e",
        "STREAMLAKE_BRONZE__TRIGGER_INTERVAL": "1 second",
        "STREAMLAKE_SPARK__DRIVER_MEMORY": "1g",
        "STREAMLAKE_STREAMS__HEARTBEAT_DIR": str(ctx.workdir / "streams"),
    })
    bronze = BronzeCommits(f"{settings.lakehouse.root}/e2e/bronze/orders")
    orders = get_contract("orders")
    events = list(synthetic.orders(E2E_PREWARM_REQUESTS * E2E_BATCH + int(E2E_RATE * (E2E_WARMUP_SECONDS + E2E_SECONDS)), seed=31))
    warmup_requests = int(E2E_RATE * E2E_WARMUP_SECONDS / E2E_BATCH)
    bodies = [
        ("[" + ",".join(e.model_dump_json() for e in events[i:i + E2E_BATCH]) + "]").encode()
        for i in range(0, len(events), E2E_BATCH)
    ]
    prewarm_bodies, bodies = bodies[:E2E_PREWARM_REQUESTS], bodies[E2E_PREWARM_REQUESTS:]
    log_path = ctx.workdir / "bronze-e2e.log"
    with log_path.open("wb") as log:
        job = subprocess.Popen(spark_submit_command(settings, JOB, "--dataset", orders.name), env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while b"query started" not in log_path.read_bytes():
            if job.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bronze job did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        with uvicorn_server("ingest_api.app:create_app", settings, ctx.workdir) as (port, _):
            # The job's first batches pay for JIT, Python workers and the first Delta commits: a
            # first load, waited for, keeps that out of the warm-up and the measurement alike.
            asyncio.run(_paced_load(port, prewarm_bodies, E2E_RATE / E2E_BATCH))
            bronze.wait_for_rows(len(prewarm_bodies) * E2E_BATCH)
            answered = asyncio.run(_paced_load(port, bodies, E2E_RATE / E2E_BATCH))
        accepted = {i: t for _, ids, t in answered for i in ids}
        steady = {i for index, ids, _ in answered if index >= warmup_requests for i in ids}
        # Counting reads only Delta's log; the data files are read once, when all is in.
        bronze.wait_for_rows((len(prewarm_bodies) + len(bodies)) * E2E_BATCH)
        committed = bronze.commit_time_by_ingestion_id()
        missing = accepted.keys() - committed.keys()
        if missing:
            raise RuntimeError(f"{len(missing)} accepted events never reached Bronze")
        latencies = {i: committed[i] - t for i, t in accepted.items()}
        batch_ms = [r["duration_ms"] for r in job_log_records(log_path, "bronze batch committed")]
        return ([v for i, v in latencies.items() if i not in steady], [v for i, v in latencies.items() if i in steady],
                batch_ms, [len(adds) for _, adds in bronze.commits() if adds])
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()


@dataclass(frozen=True)
class ColdRun:
    """One spark-submit run with the defaults over the backlog (`--available-now`), launch to exit."""

    first_commit_s: float  # launch -> the Delta commit of its first batch
    first_batch_s: float  # that batch's own duration (Spark's progress report of batch 0)
    seconds: float  # launch -> exit
    cpu_seconds: float  # the process tree: spark-submit's JVM, the Python driver, the Python workers
    peak_rss: int  # the tree's peak resident memory (bytes; forked workers' shared pages in each)
    peak_pss: int  # the same, each shared page split between its sharers (bytes)
    files_per_batch: list[int]  # data files each batch's commit added


def job_log_records(log_path: Path, message: str) -> list[dict]:
    return [json.loads(line[line.index("{"):]) for line in log_path.read_text(errors="replace").splitlines()
            if f'"message": "{message}"' in line]


def cold_run(ctx: BenchContext, application: Path, table: str, name: str) -> ColdRun:
    """Launch `application` (the Bronze job or the raw copy job) on a fresh lakehouse, as an operator
    would start it, and time it to its first committed batch and to its end."""
    root = f"{ctx.settings.lakehouse.root}/cold_{name}"
    env = spark_submit_env({**os.environ, "STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS": ctx.settings.kafka.bootstrap,
                            "STREAMLAKE_LAKEHOUSE__ROOT": root, "STREAMLAKE_STREAMS__HEARTBEAT_DIR": str(ctx.workdir / "streams")})
    log_path = ctx.workdir / f"cold-{name}.log"
    command = spark_submit_command(ctx.settings, application, "--dataset", "user_events", "--available-now")
    launched, started = time.time(), time.perf_counter()
    with log_path.open("wb") as log:
        job = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with TreeCpuMeter(job.pid) as tree:
            code = job.wait(900)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{application.name} exited {code}:\n{log_path.read_text(errors='replace')[-3000:]}")
    batches = [(at, adds) for at, adds in BronzeCommits(f"{root}/{table}").commits() if adds]
    (first_batch,) = [r for r in job_log_records(log_path, "query progress") if r["batch_id"] == 0]
    if first_batch["input_rows"] == 0:  # then the first commit with files would be a later batch's
        raise RuntimeError(f"{application.name}: its first batch read no records; the backlog is missing")
    return ColdRun(batches[0][0] - launched, first_batch["batch_duration_ms"] / 1000, seconds, tree.spent, tree.peak_rss,
                   tree.peak_pss, [len(adds) for _, adds in batches])


def _cold_details(runs: list[ColdRun]) -> dict:
    return {"first_commit_s": [round(r.first_commit_s, 2) for r in runs], "first_batch_s": [round(r.first_batch_s, 2) for r in runs],
            "seconds": [round(r.seconds, 2) for r in runs], "cpu_seconds": [round(r.cpu_seconds, 1) for r in runs],
            "peak_rss_mb": [round(r.peak_rss / 1e6) for r in runs], "peak_pss_mb": [round(r.peak_pss / 1e6) for r in runs],
            "files_per_batch": [r.files_per_batch for r in runs],
            "of": f"the median of {len(runs)} launches, each with the defaults on a fresh lakehouse, alternated with the other job's"}


@dataclass(frozen=True)
class TableBytes:
    files: int
    rows: int
    size: int  # bytes of the data files
    columns: dict[str, int]  # compressed bytes per Parquet column
    codecs: list[str]

    @property
    def per_row(self) -> float:
        return self.size / self.rows


def table_bytes(table_uri: str) -> TableBytes:
    """What a local, append-only Delta table's data files hold, from their Parquet footers."""
    files = sorted(Path(urlparse(table_uri).path).rglob("*.parquet"))
    columns: dict[str, int] = {}
    codecs: set[str] = set()
    rows = 0
    for data_file in files:
        metadata = pq.ParquetFile(data_file).metadata
        rows += metadata.num_rows
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                columns[chunk.path_in_schema] = columns.get(chunk.path_in_schema, 0) + chunk.total_compressed_size
                codecs.add(chunk.compression)
    return TableBytes(len(files), rows, sum(f.stat().st_size for f in files), columns, sorted(codecs))


def _bytes_details(table: TableBytes) -> dict:
    by_size = sorted(table.columns.items(), key=lambda item: -item[1])
    return {"rows": table.rows, "files": table.files, "mb": round(table.size / 1e6, 2), "codecs": table.codecs,
            "column_bytes_per_row": {column: round(size / table.rows, 2) for column, size in by_size}}


def _run_details(costs: list[RunCost]) -> dict[str, list[float]]:
    return {"batch_seconds": [round(r.batch_seconds, 2) for r in costs], "seconds": [round(r.seconds, 2) for r in costs],
            "cpu_seconds": [round(r.cpu_seconds, 1) for r in costs],
            "host_steal_seconds": [round(r.steal_seconds, 1) for r in costs]}


def _median_rate(costs: list[RunCost]) -> float:
    return statistics.median(r.sustained_rate for r in costs[WARMUP_ROUNDS:])


def _median_whole_run_rate(costs: list[RunCost]) -> float:
    return EVENTS / statistics.median(r.seconds for r in costs[WARMUP_ROUNDS:])


def _cpu_us_per_event(costs: list[RunCost]) -> float:
    return statistics.median(r.cpu_seconds for r in costs[WARMUP_ROUNDS:]) / EVENTS * 1e6


def _median(runs: list[ColdRun], figure: Callable[[ColdRun], float]) -> float:
    return statistics.median(figure(r) for r in runs)


def _trigger_seconds(interval: str) -> float:
    """'2 seconds' -> 2.0: the trigger intervals StreamLake's settings use."""
    amount, unit = interval.split()
    return float(amount) * {"second": 1, "seconds": 1, "minute": 60, "minutes": 60}[unit]


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    produce_with_poison(settings, "user_events", EVENTS)
    spark = build_spark_session(settings, "streamlake-bench-bronze")
    try:
        topic = get_contract("user_events").raw_topic
        # Alternate the two queries, so that the JVM's warming up and the host's load fall on both.
        meter = SparkCpu(spark)
        copies: list[RunCost] = []
        bronzes: list[RunCost] = []
        for run_index in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
            copies.append(raw_copy_run(spark, settings, topic, run_index, meter))
            bronzes.append(bronze_run(spark, settings, "user_events", run_index, meter))
        last = WARMUP_ROUNDS + MEASURED_ROUNDS - 1
        copy_bytes = table_bytes(f"{settings.lakehouse.root}/raw_copy_{last}")
        bronze_bytes = table_bytes(f"{settings.lakehouse.root}/bronze_run_{last}/bronze/user_events")
    finally:
        spark.stop()  # the cold runs and the latency run have the machine to themselves
    cold_copies: list[ColdRun] = []
    cold_bronzes: list[ColdRun] = []
    for run_index in range(COLD_ROUNDS):
        cold_copies.append(cold_run(ctx, RAW_COPY_JOB, "raw_copy/user_events", f"copy_{run_index}"))
        cold_bronzes.append(cold_run(ctx, JOB, "bronze/user_events", f"bronze_{run_index}"))
    warmup_latencies, latencies, batch_ms, steady_files = e2e_latency(ctx)
    steady_files_per_batch = statistics.median(steady_files)
    default_trigger_s = _trigger_seconds(settings.bronze.trigger_interval)
    details = {"events": EVENTS, "poison_share": POISON_SHARE,
               "max_offsets_per_trigger": settings.bronze.max_offsets_per_trigger, "master": settings.spark.master,
               "of": f"the median of {MEASURED_ROUNDS} rounds, after {WARMUP_ROUNDS} warm-up rounds (listed first)"}
    # Each round runs the two queries back to back, so its ratio compares them under the same host load.
    round_ratios = [round(b.sustained_rate / c.sustained_rate, 3) for c, b in zip(copies, bronzes, strict=True)]
    return [
        Measurement("raw Kafka -> Delta copy (baseline)", _median_rate(copies), "events/s",
                    details={**details, **_run_details(copies)}),
        Measurement("Kafka -> Bronze (parse, validate, DLQ)", _median_rate(bronzes), "events/s",
                    baseline="raw Kafka -> Delta copy (baseline)", target="ratio >= 0.6",
                    details={**details, **_run_details(bronzes), "ratio_per_round": round_ratios}),
        Measurement("copy, whole run with start-up", _median_whole_run_rate(copies), "events/s"),
        Measurement("Bronze, whole run with start-up", _median_whole_run_rate(bronzes), "events/s",
                    baseline="copy, whole run with start-up"),
        Measurement("raw copy, CPU us per event (warm)", _cpu_us_per_event(copies), "cpu us",
                    details={"of": "Spark's JVM and its Python workers, median of the measured rounds"}),
        Measurement("Bronze, CPU us per event (warm)", _cpu_us_per_event(bronzes), "cpu us",
                    baseline="raw copy, CPU us per event (warm)", target="<= 80"),
        Measurement("raw copy job, launch -> first commit", _median(cold_copies, lambda r: r.first_commit_s), "s",
                    details=_cold_details(cold_copies)),
        Measurement("Bronze job, launch -> first commit", _median(cold_bronzes, lambda r: r.first_commit_s), "s",
                    baseline="raw copy job, launch -> first commit", target="<= 10 s", details=_cold_details(cold_bronzes)),
        Measurement("raw copy job, first batch", _median(cold_copies, lambda r: r.first_batch_s), "s"),
        Measurement("Bronze job, first batch", _median(cold_bronzes, lambda r: r.first_batch_s), "s",
                    baseline="raw copy job, first batch"),
        Measurement("raw copy job, whole run", EVENTS / _median(cold_copies, lambda r: r.seconds), "events/s"),
        Measurement("Bronze job, whole run", EVENTS / _median(cold_bronzes, lambda r: r.seconds), "events/s",
                    baseline="raw copy job, whole run"),
        Measurement("raw copy job, CPU us per event", _median(cold_copies, lambda r: r.cpu_seconds) / EVENTS * 1e6, "cpu us"),
        Measurement("Bronze job, CPU us per event", _median(cold_bronzes, lambda r: r.cpu_seconds) / EVENTS * 1e6, "cpu us",
                    baseline="raw copy job, CPU us per event"),
        Measurement("raw copy job, peak memory", _median(cold_copies, lambda r: r.peak_rss) / 1e6, "MB"),
        Measurement("Bronze job, peak memory", _median(cold_bronzes, lambda r: r.peak_rss) / 1e6, "MB",
                    baseline="raw copy job, peak memory",
                    details={"driver_memory": settings.spark.driver_memory, "of": "resident memory summed over the process tree"}),
        Measurement("raw copy job, files per batch", _median(cold_copies, lambda r: statistics.median(r.files_per_batch)), "files"),
        Measurement("Bronze job, files per batch", _median(cold_bronzes, lambda r: statistics.median(r.files_per_batch)), "files",
                    baseline="raw copy job, files per batch",
                    details={"max_offsets_per_trigger": settings.bronze.max_offsets_per_trigger, "kafka_partitions": 3}),
        Measurement("Bronze, files per batch at 1,000 events/s", steady_files_per_batch, "files",
                    details={"batches": len(steady_files), "bronze_trigger": "1 second",
                             "files_per_day_at_default_trigger": round(steady_files_per_batch * 86_400 / default_trigger_s),
                             "default_trigger": settings.bronze.trigger_interval}),
        Measurement("raw copy, bytes per event", copy_bytes.per_row, "bytes", details=_bytes_details(copy_bytes)),
        Measurement("Bronze, bytes per event", bronze_bytes.per_row, "bytes", baseline="raw copy, bytes per event",
                    target="<= 130", details={**_bytes_details(bronze_bytes),
                                              "parquet_compression": settings.lakehouse.parquet_compression,
                                              "parquet_zstd_level": settings.lakehouse.parquet_zstd_level}),
        Measurement("API 202 -> visible in Bronze, p50", _percentile(latencies, 0.50), "s",
                    details={"rate_events_per_s": E2E_RATE, "seconds": E2E_SECONDS, "events": len(latencies),
                             "bronze_trigger": "1 second", "warmup_seconds": E2E_WARMUP_SECONDS,
                             "warmup_p50_s": _percentile(warmup_latencies, 0.5),
                             "warmup_p99_s": _percentile(warmup_latencies, 0.99),
                             "prewarm_events": E2E_PREWARM_REQUESTS * E2E_BATCH,
                             "bronze_batch_ms_p50_max": [_percentile(batch_ms, 0.5), max(batch_ms)]}),
        Measurement("API 202 -> visible in Bronze, p99", _percentile(latencies, 0.99), "s", target="< 10 s"),
    ]
