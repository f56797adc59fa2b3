"""Ingestion API throughput and latency against its ceilings, on loopback (`python -m bench ingest_api`).

Side by side, in one run against the harness's private broker:
  (a) the raw confluent-kafka producer sending the same records (the Kafka + client ceiling),
  (b) the batch endpoint, in events/s (compared with a),
  (c) the single-event endpoint, in requests/s with p50/p99 latency,
  (d) a no-op FastAPI endpoint under the same uvicorn settings (the framework ceiling; c is compared
      with it).
The servers run as `uvicorn` subprocesses. The load generator is a small asyncio HTTP/1.1 client in
this process (keep-alive connections, closed loop, bounded in time): a pure-Python tool lean enough
not to be the bottleneck first, where httpx would be. It shares the machine's cores with the server
and the broker, so every number here is a lower bound for a server with cores of its own.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Request, Response

from bench.harness import BenchContext, Measurement, machine_cpu_s, process_tree_cpu_s
from conf.settings import Settings
from contracts.envelope import wrap
from contracts.registry import get_contract
from jobs.kafka_produce import produce_all
from streamlake import synthetic
from streamlake.ports import free_port, stop_process
from streamlake.topics import apply_topics, declared_topics

DATASET = "user_events"
DISTINCT_EVENTS = 5_000
BATCH_SIZE = 500
RAW_EVENTS = 300_000
# Same uvicorn settings for the API and the no-op app, so (c)/(d) compares the handlers only: one
# worker per core, as a 2-core deployment would run (`api.workers`); BENCH_API_WORKERS overrides.
SERVER_WORKERS = int(os.environ.get("BENCH_API_WORKERS", "2"))
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
# Concurrent clients of the single-event and no-op loads (closed loop: requests/s = connections /
# latency); BENCH_SINGLE_CONNECTIONS overrides, for a look at throughput against latency.
SINGLE_CONNECTIONS = int(os.environ.get("BENCH_SINGLE_CONNECTIONS", "64"))
BATCH_CONNECTIONS = 8
WARMUP_S = 3.0
MEASURE_S = 12.0
NOOP_PATH = "/noop"


def create_noop_app() -> FastAPI:
    """The framework ceiling: a POST that reads its body and answers 202, nothing else (bench only)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gc.freeze()  # as the API's lifespan does, so the two differ only in their handlers
        yield

    app = FastAPI(lifespan=lifespan)
    accepted = b'{"events":[]}'

    @app.post(NOOP_PATH, status_code=202)
    async def noop(request: Request) -> Response:
        await request.body()
        return Response(accepted, status_code=202, media_type="application/json")

    return app


# -- load generator ----------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int  # answered inside the measured window
    seconds: float
    latencies_s: list[float]
    statuses: dict[int, int]
    total_requests: int = 0  # including the warm-up, for CPU per request
    cpu_us_per_request: dict[str, float] | None = None
    machine_cores: dict[str, float] | None = None  # what other processes and steal took meanwhile

    @property
    def per_second(self) -> float:
        """Accepted (202) answers per second: a 503 is not throughput."""
        return self.statuses.get(202, 0) / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, wait for its whole response, repeat."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._waiter: asyncio.Future[int] | None = None
        self._need: int | None = None
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._need is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].lower()
            self._status = int(head[9:12])
            start = head.index(b"content-length:") + len(b"content-length:")
            length = int(head[start:head.index(b"\r\n", start) if b"\r\n" in head[start:] else len(head)])
            self._need = end + 4 + length
        if len(self._buffer) >= self._need:
            self._buffer = self._buffer[self._need:]
            self._need = None
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def exchange(self, request: bytes) -> int:
        self._waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return await self._waiter


def _requests(port: int, path: str, bodies: list[bytes]) -> list[bytes]:
    return [
        (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for body in bodies
    ]


async def _load(port: int, requests: list[bytes], connections: int, warmup_s: float, measure_s: float) -> LoadResult:
    loop = asyncio.get_running_loop()
    clock = time.perf_counter  # uvloop's loop.time() is cached per iteration, in milliseconds
    start = clock() + warmup_s
    stop = start + measure_s
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answered = 0

    async def client(offset: int) -> None:
        nonlocal answered
        _, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
        try:
            for request in itertools.islice(itertools.cycle(requests), offset, None):
                sent = clock()
                if sent >= stop:
                    return
                status = await conn.exchange(request)
                answered += 1
                if sent >= start:
                    latencies.append(clock() - sent)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.transport.close()  # type: ignore[union-attr]

    await asyncio.gather(*(client(i * 97 % len(requests)) for i in range(connections)))
    return LoadResult(len(latencies), measure_s, latencies, statuses, answered)


def run_load(server: tuple[int, int], broker_pid: int | None, path: str, bodies: list[bytes], connections: int) -> LoadResult:
    import uvloop

    port, pid = server
    with CpuMeter(pid, broker_pid) as cpu:
        result = uvloop.run(_load(port, _requests(port, path, bodies), connections, WARMUP_S, MEASURE_S))
    result.cpu_us_per_request = cpu.per_request_us(result.total_requests)
    result.machine_cores = cpu.machine_cores()
    return result


# -- where the cores go ------------------------------------------------------------------------


@dataclass
class CpuMeter:
    """CPU seconds spent by the server, the broker and this process (the load generator) during a
    load, and what the rest of the machine took meanwhile: other processes and interrupts (the
    loopback traffic's softirq included), and the time the hypervisor gave our virtual CPUs to
    someone else (steal)."""

    server_pid: int
    broker_pid: int | None

    def __enter__(self) -> CpuMeter:
        self._start = self._sample()
        return self

    def __exit__(self, *_: object) -> None:
        self.spent = [end - start for start, end in zip(self._start, self._sample(), strict=True)]

    def _sample(self) -> tuple[float, ...]:
        broker = process_tree_cpu_s(self.broker_pid) if self.broker_pid else 0.0
        return (process_tree_cpu_s(self.server_pid), broker, time.process_time(), *machine_cpu_s(), time.perf_counter())

    def per_request_us(self, requests: int) -> dict[str, float]:
        server, broker, load = (round(s / requests * 1e6) for s in self.spent[:3])
        return {"server": server, "broker": broker, "load_generator": load}

    def machine_cores(self) -> dict[str, float]:
        """Cores' worth of CPU that other processes and steal took during the load."""
        server, broker, load, busy, steal, elapsed = self.spent
        return {"other_processes_and_irq": round((busy - server - broker - load) / elapsed, 2), "steal": round(steal / elapsed, 2)}


def _broker_pid(ctx: BenchContext) -> int | None:
    # bench.harness keeps its private broker's data under <workdir>/kafka (LocalBroker's pid file).
    try:
        return int((ctx.workdir / "kafka" / "broker.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


# -- servers -----------------------------------------------------------------------------------


@contextmanager
def uvicorn_server(target: str, settings: Settings, log_dir: Path) -> Iterator[tuple[int, int]]:
    """`uvicorn --factory <target>` on a free port with the bench's server settings; always stopped."""
    port = free_port()
    env = {**os.environ, "STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap}
    command = [sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(SERVER_WORKERS), *UVICORN_FLAGS]
    log_path = log_dir / f"uvicorn-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not answer within 60 s:\n{log_path.read_text()}") from None
                time.sleep(0.2)
        yield port, process.pid
    finally:
        stop_process(process)


# -- the four measurements ---------------------------------------------------------------------


def raw_producer_events_per_s(settings: Settings, records: list[tuple[bytes, bytes, list]]) -> float:
    """(a): the same records through one idempotent producer with the API's config, flushed once."""
    topic = get_contract(DATASET).raw_topic
    producer = Producer(
        settings.kafka.producer_config(client_id="bench-raw-producer", linger_ms=settings.api.producer_linger_ms)
    )
    failures = 0

    def on_delivery(err, _msg) -> None:
        nonlocal failures
        failures += err is not None

    started = time.perf_counter()
    produce_all(producer, topic, itertools.islice(itertools.cycle(records), RAW_EVENTS), on_delivery=on_delivery,
                wait_for_room_s=0.01)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    if remaining or failures:
        raise RuntimeError(f"raw producer: {remaining} undelivered, {failures} failed")
    return RAW_EVENTS / elapsed


def _checked(name: str, result: LoadResult) -> LoadResult:
    # A 503 is the API's correct answer when Kafka cannot keep up (it is counted, not fatal);
    # anything else means the benchmark is not measuring what it claims.
    unexpected = {s: n for s, n in result.statuses.items() if s not in (202, 503)}
    if unexpected or not result.statuses.get(202):
        raise RuntimeError(f"{name}: unexpected answers {result.statuses} of {result.requests}")
    return result


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings
    apply_topics(AdminClient(settings.kafka.client_config()), declared_topics(settings))
    contract = get_contract(DATASET)
    events = list(synthetic.events(DATASET, DISTINCT_EVENTS))
    records = [wrap(contract, e, "bench-raw-producer") for e in events]
    single_bodies = [e.model_dump_json().encode() for e in events]
    batch_bodies = [
        json.dumps([json.loads(b) for b in single_bodies[i:i + BATCH_SIZE]]).encode()
        for i in range(0, DISTINCT_EVENTS, BATCH_SIZE)
    ]

    broker_pid = _broker_pid(ctx)
    load_before = os.getloadavg()
    raw = raw_producer_events_per_s(settings, records)
    with uvicorn_server("ingest_api.app:create_app", settings, ctx.workdir) as server:
        batch = _checked("batch", run_load(server, broker_pid, f"/v1/datasets/{DATASET}/events:batch", batch_bodies,
                                           BATCH_CONNECTIONS))
        single = _checked("single", run_load(server, broker_pid, f"/v1/datasets/{DATASET}/events", single_bodies,
                                             SINGLE_CONNECTIONS))
    with uvicorn_server("bench.bench_ingest_api:create_noop_app", settings, ctx.workdir) as server:
        noop = _checked("noop", run_load(server, broker_pid, NOOP_PATH, single_bodies, SINGLE_CONNECTIONS))

    setup = {"workers": SERVER_WORKERS, "uvicorn": " ".join(UVICORN_FLAGS), "cpus": os.cpu_count(),
             "api_producer_linger_ms": settings.api.producer_linger_ms,
             "load_generator": "asyncio HTTP/1.1 keep-alive client in the bench process (same cores)",
             # Other work on the machine (load average before / after) skews every number here.
             "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}

    def load_details(result: LoadResult, connections: int) -> dict:
        return {**setup, "connections": connections, "requests_per_s": round(result.per_second, 1),
                "p50_ms": result.percentile_ms(0.5), "p99_ms": result.percentile_ms(0.99),
                "cpu_us_per_request": result.cpu_us_per_request,
                "cores_taken_by_others": result.machine_cores, "answers": result.statuses}

    return [
        Measurement("a_raw_producer", raw, "events/s",
                    details={"events": RAW_EVENTS, "producer_config": "settings.kafka.producer_config"}),
        Measurement("b_batch_endpoint", batch.per_second * BATCH_SIZE, "events/s", baseline="a_raw_producer",
                    target="ratio >= 0.5", details={**load_details(batch, BATCH_CONNECTIONS), "batch_size": BATCH_SIZE}),
        Measurement("d_noop_endpoint", noop.per_second, "requests/s", details=load_details(noop, SINGLE_CONNECTIONS)),
        Measurement("c_single_event_endpoint", single.per_second, "requests/s", baseline="d_noop_endpoint",
                    target=">= 3000 requests/s; ratio >= 0.5", details=load_details(single, SINGLE_CONNECTIONS)),
        Measurement("c_single_event_p50", single.percentile_ms(0.5), "ms"),
        Measurement("c_single_event_p99", single.percentile_ms(0.99), "ms", target="< 50 ms"),
    ]
