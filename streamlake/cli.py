"""The `streamlake` command line. Thin: parse, load settings, call the module that does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conf.logging import configure_logging
from conf.settings import ConfigError, Settings, load_settings

app = typer.Typer(help="StreamLake: a Kafka-first streaming lakehouse.", no_args_is_help=True, add_completion=False)
kafka_app = typer.Typer(help="The local single-node Kafka broker (KRaft).", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics declared by the contracts and configuration.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
stream_app = typer.Typer(help="Long-running Spark Structured Streaming jobs (run through spark-submit).", no_args_is_help=True)
app.add_typer(stream_app, name="stream")
batch_app = typer.Typer(help="Batch Spark jobs: Silver and Gold, write-audit-publish (run through spark-submit).", no_args_is_help=True)
app.add_typer(batch_app, name="batch")

_state: dict[str, str | None] = {"env": None}


@app.callback()
def main(
    env: Annotated[str | None, typer.Option(help="Config env: conf/<env>.yaml (default: STREAMLAKE_ENV or local).")] = None,
    log_level: Annotated[str, typer.Option(help="Log level of StreamLake's own JSON logs.")] = "WARNING",
) -> None:
    configure_logging(log_level.upper())
    _state["env"] = env


def _settings() -> Settings:
    try:
        return load_settings(_state["env"])
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None


def _broker():
    from streamlake.kafka_broker import LocalBroker

    return LocalBroker.from_settings(_settings())


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the broker (formats storage on first start); wait until it answers metadata."""
    from streamlake.kafka_broker import BrokerError

    broker = _broker()
    try:
        status = broker.start()
    except BrokerError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(str(status))


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the broker gracefully (controlled shutdown)."""
    broker = _broker()
    stopped = broker.stop()
    typer.echo(f"kafka broker stopped ({broker.bootstrap})" if stopped else f"kafka broker was not running ({broker.bootstrap})")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the broker is up and where; exit 0 when up, 1 when down."""
    status = _broker().status()
    typer.echo(str(status))
    raise typer.Exit(0 if status.up else 1)


@topics_app.command("apply")
def topics_apply(
    increase_partitions: Annotated[
        bool, typer.Option(help="Add partitions to topics that have fewer than declared (moves keys; never decreases).")
    ] = False,
) -> None:
    """Create the declared topics that are missing; report any that differ. Exit 1 on drift."""
    from confluent_kafka.admin import AdminClient

    from streamlake.topics import Action, apply_topics, declared_topics

    settings = _settings()
    admin = AdminClient({**settings.kafka.client_config(), "log_level": 0})
    try:
        results = apply_topics(admin, declared_topics(settings), increase_partitions=increase_partitions)
    except Exception as exc:  # noqa: BLE001 - the broker is down or refused, in many ways: say so plainly
        typer.echo(f"topics apply failed against {settings.kafka.bootstrap}: {exc}", err=True)
        raise typer.Exit(1) from None
    for result in results:
        typer.echo(str(result))
    created = sum(r.action is Action.CREATED for r in results)
    drift = [r for r in results if r.action is Action.DRIFT]
    typer.echo(f"{created} created, {len(drift)} with drift, {len(results)} declared")
    raise typer.Exit(1 if drift else 0)


@app.command()
def demo(events: Annotated[int, typer.Option(min=1, help="Events produced per dataset.")] = 300) -> None:
    """The main job: broker, topics, events and poison pills, Bronze job -> Delta + DLQ, reconciliation."""
    from streamlake.demo import run_demo

    summaries = run_demo(_settings(), events, echo=typer.echo)
    unreconciled = [s.dataset for s in summaries if not s.reconciled]
    if unreconciled:
        typer.echo(f"Kafka and Bronze + DLQ do not reconcile for {', '.join(unreconciled)}", err=True)
        raise typer.Exit(1)
    typer.echo("reconciled: every Kafka message is a Bronze row or a DLQ record, exactly once")


@app.command()
def api() -> None:
    """Serve the ingestion API with uvicorn (host, port, workers and access log from `api` settings)."""
    import os

    import uvicorn

    settings = _settings()
    if _state["env"]:
        # Every worker builds its own app from get_settings(); the chosen env must reach them.
        os.environ["STREAMLAKE_ENV"] = _state["env"]
    api_settings = settings.api
    typer.echo(f"ingestion API on http://{api_settings.host}:{api_settings.port} ({api_settings.workers} worker(s)), "
               f"kafka {settings.kafka.bootstrap}")
    uvicorn.run(
        "ingest_api.app:create_app",
        factory=True,
        host=api_settings.host,
        port=api_settings.port,
        workers=api_settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=api_settings.access_log,
        log_config=None,  # keep StreamLake's JSON logging (configured by the callback above)
    )


@stream_app.command("bronze")
def stream_bronze(
    dataset: Annotated[str, typer.Option(help="A registered dataset, e.g. user_events.")],
    available_now: Annotated[bool, typer.Option(help="Process what Kafka holds now, then exit.")] = False,
) -> None:
    """Kafka raw topic -> Bronze Delta + DLQ, exactly once (spark-submit jobs/bronze_stream.py)."""
    _run_spark_job("bronze_stream.py", dataset, ["--available-now"] if available_now else [])


@stream_app.command("realtime")
def stream_realtime(dataset: Annotated[str, typer.Option(help="A registered dataset, e.g. user_events.")]) -> None:
    """Bronze -> 1-minute real-time metrics in Delta (spark-submit jobs/realtime_metrics.py)."""
    _run_spark_job("realtime_metrics.py", dataset, [])


DatasetOption = Annotated[str, typer.Option(help="A registered dataset, e.g. user_events.")]
FromOption = Annotated[str | None, typer.Option("--from", help="First date of a range (YYYY-MM-DD), with --to.")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last date of the range, inclusive.")]
ResultFileOption = Annotated[str | None, typer.Option(help="Also write the run's result JSON to this local file.")]


def _date_args(**named: str | None) -> list[str]:
    """The options given, as the job's own arguments (the job checks them and names a bad one)."""
    args = []
    for name, value in named.items():
        if value is not None:
            args += [f"--{name.replace('_', '-')}", value]
    return args


@batch_app.command("silver")
def batch_silver(
    dataset: DatasetOption,
    date: Annotated[str | None, typer.Option(help="Bronze ingestion date to process (YYYY-MM-DD).")] = None,
    from_: FromOption = None,
    to: ToOption = None,
    result_file: ResultFileOption = None,
) -> None:
    """Bronze rows ingested on a date (or each date of a range) -> Silver (spark-submit jobs/silver_batch.py)."""
    _run_batch_job("silver", dataset, _date_args(date=date, **{"from": from_}, to=to, result_file=result_file), listed=False)


@batch_app.command("gold")
def batch_gold(
    dataset: DatasetOption,
    dates: Annotated[str | None, typer.Option(help="Event dates to rebuild, comma-separated (YYYY-MM-DD,...).")] = None,
    from_: FromOption = None,
    to: ToOption = None,
    result_file: ResultFileOption = None,
) -> None:
    """Silver -> the dataset's Gold tables, rebuilt for exactly the given event dates (spark-submit jobs/gold_batch.py)."""
    _run_batch_job("gold", dataset, _date_args(dates=dates, **{"from": from_}, to=to, result_file=result_file), listed=True)


def _run_batch_job(job: str, dataset: str, args: list[str], *, listed: bool) -> None:
    from jobs.batch_run import parse_date_arguments

    parse_date_arguments(args, listed=listed, prog=f"streamlake batch {job}")  # a bad one exits 2, naming it
    _run_spark_job(f"{job}_batch.py", dataset, args)


def _run_spark_job(script: str, dataset: str, extra: list[str]) -> None:
    import os

    from contracts.registry import UnknownDatasetError, get_contract
    from jobs.spark_session import spark_submit_command, spark_submit_env

    settings = _settings()
    try:
        get_contract(dataset)
    except UnknownDatasetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    job = Path(__file__).resolve().parent.parent / "jobs" / script
    args = ["--dataset", dataset, *extra] + (["--env", _state["env"]] if _state["env"] else [])
    command = spark_submit_command(settings, job, *args)
    # exec: signals (SIGTERM from an orchestrator) reach spark-submit directly.
    os.execve(command[0], command, spark_submit_env(dict(os.environ)))
