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
dlq_app = typer.Typer(help="The dead-letter topics: inspect what failed, re-drive it after a fix.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
ops_app = typer.Typer(help="Operators' reports: rows per layer, DLQ, lag, runs and their checks.", no_args_is_help=True)
app.add_typer(ops_app, name="ops")

_state: dict[str, str | None] = {"env": None}
# The jobs `streamlake stream` runs, by the name their heartbeat files carry (jobs.*.JOB).
STREAMING_JOBS = ("bronze", "realtime")


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


@stream_app.command("health")
def stream_health(
    job: Annotated[str, typer.Argument(help="The streaming job: bronze or realtime.")],
    dataset: Annotated[str, typer.Option(help="A registered dataset, e.g. user_events.")],
    max_age_s: Annotated[float | None, typer.Option(help="Seconds a query may stay silent (default: streams.heartbeat_max_age_s).")] = None,
) -> None:
    """Exit 0 when the job running on this machine has heard from each of its queries lately, 1 (saying
    which query and since when) otherwise: a container's health check. Starts no Spark."""
    from contracts.registry import UnknownDatasetError, get_contract
    from jobs.stream_heartbeat import check_heartbeat, heartbeat_path

    if job not in STREAMING_JOBS:
        typer.echo(f"job: {job!r} is not a streaming job (one of {', '.join(STREAMING_JOBS)})", err=True)
        raise typer.Exit(2)
    settings = _settings()
    try:
        get_contract(dataset)
    except UnknownDatasetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if max_age_s is not None and max_age_s <= 0:
        typer.echo(f"--max-age-s: must be positive, got {max_age_s:g}", err=True)
        raise typer.Exit(2)
    health = check_heartbeat(heartbeat_path(settings, job, dataset), max_age_s or settings.streams.heartbeat_max_age_s)
    if not health.healthy:
        typer.echo(f"{job} {dataset}: unhealthy: {health.detail}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{job} {dataset}: healthy: {health.detail}")


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
    silver_dates: Annotated[str | None, typer.Option(
        help="Rebuild the event dates that Silver runs of these ingestion dates touched (YYYY-MM-DD,...).")] = None,
    from_: FromOption = None,
    to: ToOption = None,
    result_file: ResultFileOption = None,
) -> None:
    """Silver -> the dataset's Gold tables, rebuilt for exactly the given event dates (spark-submit jobs/gold_batch.py)."""
    args = _date_args(dates=dates, silver_dates=silver_dates, **{"from": from_}, to=to, result_file=result_file)
    _run_batch_job("gold", dataset, args, listed=True)


def _run_batch_job(job: str, dataset: str, args: list[str], *, listed: bool) -> None:
    from jobs.batch_run import parse_date_arguments

    parse_date_arguments(args, listed=listed, prog=f"streamlake batch {job}")  # a bad one exits 2, naming it
    _run_spark_job(f"{job}_batch.py", dataset, args)


def _run_spark_job(script: str, dataset: str | None, extra: list[str]) -> None:
    """Exec spark-submit on `jobs/<script>`; `dataset` None for a job over every dataset."""
    import os

    from contracts.registry import UnknownDatasetError, get_contract
    from jobs.spark_session import spark_submit_command, spark_submit_env

    settings = _settings()
    try:
        if dataset is not None:
            get_contract(dataset)
    except UnknownDatasetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    job = Path(__file__).resolve().parent.parent / "jobs" / script
    args = (["--dataset", dataset] if dataset is not None else []) + [*extra] + (["--env", _state["env"]] if _state["env"] else [])
    env = {**os.environ, **_cluster_job_env(settings)}
    command = spark_submit_command(settings, job, *args)
    # exec: signals (SIGTERM from an orchestrator) reach spark-submit directly.
    os.execve(command[0], command, spark_submit_env(env))


def _cluster_job_env(settings: Settings) -> dict[str, str]:
    """For a cluster master: the py_files zip rebuilt from this checkout before each submit, so the
    executors run the code the driver runs (a stale zip would not say so); and, as the driver then
    imports the project from that zip too, the settings pinned that would point into it."""
    from jobs.spark_session import is_local_master
    from streamlake.airflow_env import build_py_files, pinned_settings_env

    if is_local_master(settings.spark.master):
        return {}
    return pinned_settings_env(settings, build_py_files())


# -- replay and backfill ------------------------------------------------------------------------


@app.command()
def replay(
    dataset: DatasetOption,
    from_offsets: Annotated[str | None, typer.Option(help='First offset per partition, JSON: {"0": 100}.')] = None,
    to_offsets: Annotated[str | None, typer.Option(help='End offset per partition, exclusive, JSON: {"0": 200}.')] = None,
    from_time: Annotated[str | None, typer.Option(help="First record time, ISO-8601 (UTC when no zone).")] = None,
    to_time: Annotated[str | None, typer.Option(help="End record time, exclusive, ISO-8601.")] = None,
    partitions: Annotated[str | None, typer.Option(help="Only these partitions, comma-separated (default: all).")] = None,
    replay_id: Annotated[str | None, typer.Option(help="The replay's id; with no range, the id of a resolved one.")] = None,
    resolve_only: Annotated[bool, typer.Option(help="Resolve and record the range, read nothing.")] = False,
    no_rebuild: Annotated[bool, typer.Option(help="Do not rebuild Silver and Gold afterwards.")] = False,
    result_file: ResultFileOption = None,
) -> None:
    """A bounded range of the raw topic -> the Bronze rows Bronze lacks (+ DLQ), then Silver and Gold
    for the dates touched (spark-submit jobs/replay_batch.py)."""
    from jobs.replay_batch import parse_arguments

    args = _date_args(from_offsets=from_offsets, to_offsets=to_offsets, from_time=from_time, to_time=to_time, partitions=partitions,
                      replay_id=replay_id, result_file=result_file)
    args += ["--resolve-only"] * resolve_only + ["--no-rebuild"] * no_rebuild
    parse_arguments(["--dataset", dataset, *args])  # a bad argument exits 2, naming it, before Spark starts
    _run_spark_job("replay_batch.py", dataset, args)


@app.command()
def backfill(
    dataset: DatasetOption,
    from_: Annotated[str, typer.Option("--from", help="First Bronze ingestion date (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last ingestion date, inclusive.")],
    result_file: ResultFileOption = None,
) -> None:
    """Silver and Gold recomputed from Bronze for a date range, with the daily run's jobs; safe to
    repeat (spark-submit jobs/rebuild_batch.py)."""
    from jobs.batch_run import parse_date_arguments

    args = _date_args(**{"from": from_}, to=to, result_file=result_file)
    parse_date_arguments(args, listed=False, prog="streamlake backfill", by_replay=True)
    _run_spark_job("rebuild_batch.py", dataset, args)


# -- dlq --------------------------------------------------------------------------------------


SinceOption = Annotated[str | None, typer.Option(help="Only DLQ records written at or after this ISO-8601 time (UTC without a zone).")]


def _check_since(since: str | None) -> list[str]:
    import argparse

    from jobs.dlq_inspect import iso_time

    if since is None:
        return []
    try:
        iso_time(since)
    except argparse.ArgumentTypeError as exc:
        typer.echo(f"argument --since: {exc}", err=True)
        raise typer.Exit(2) from None
    return ["--since", since]


@dlq_app.command("inspect")
def dlq_inspect(
    dataset: DatasetOption,
    since: SinceOption = None,
    output: Annotated[str | None, typer.Option(help="Also write the report's JSON to this local file.")] = None,
) -> None:
    """What the DLQ holds, deduplicated, by reason and hour, with samples (spark-submit jobs/dlq_inspect.py)."""
    _run_spark_job("dlq_inspect.py", dataset, _check_since(since) + (["--output", output] if output else []))


@dlq_app.command("redrive")
def dlq_redrive(
    dataset: DatasetOption,
    reason: Annotated[str | None, typer.Option(help="Re-drive the DLQ records of this error class, e.g. oversized.")] = None,
    coordinates: Annotated[str | None, typer.Option(
        help='A JSON file of source coordinates to re-drive: [{"topic": ..., "partition": ..., "offset": ...}].')] = None,
    since: SinceOption = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would be re-driven; change nothing.")] = False,
) -> None:
    """Send DLQ records back to the raw topic after a fix, each at most once (spark-submit jobs/dlq_redrive.py)."""
    from contracts.registry import DATASETS
    from jobs.dlq_redrive import CoordinatesFileError, read_coordinates_file

    if (reason is None) == (coordinates is None):
        typer.echo("give exactly one of --reason and --coordinates", err=True)
        raise typer.Exit(2)
    args = _check_since(since)
    if coordinates is not None:
        try:
            read_coordinates_file(coordinates, DATASETS[dataset].raw_topic if dataset in DATASETS else None)
        except CoordinatesFileError as exc:
            typer.echo(f"argument --coordinates: {exc}", err=True)
            raise typer.Exit(2) from None
        args += ["--coordinates", str(Path(coordinates).resolve())]
    else:
        args += ["--reason", str(reason)]
    _run_spark_job("dlq_redrive.py", dataset, args + (["--dry-run"] if dry_run else []))



# -- ops --------------------------------------------------------------------------------------


@ops_app.command("summary")
def ops_summary(
    date: Annotated[str | None, typer.Option(help="The day to report (YYYY-MM-DD, UTC; default: today).")] = None,
    output_dir: Annotated[str | None, typer.Option(help="Also write the report's JSON and HTML to this local folder.")] = None,
    runs: Annotated[str | None, typer.Option(help="Last runs shown per dataset (default: 10).")] = None,
) -> None:
    """Every dataset's rows per layer, DLQ by reason, Kafka lag, last runs and checks, replays and
    re-drives for a date, as JSON and HTML under <lakehouse>/_ops/reports/ (spark-submit jobs/ops_summary.py)."""
    import argparse

    from jobs.ops_summary import add_arguments

    args = _date_args(date=date, output_dir=output_dir and str(Path(output_dir).resolve()), runs=runs)
    parser = argparse.ArgumentParser(prog="streamlake ops summary")
    add_arguments(parser)
    parser.parse_args(args)  # a bad argument exits 2, naming it, before Spark starts
    _run_spark_job("ops_summary.py", None, args)  # every dataset: no --dataset


# -- serve ------------------------------------------------------------------------------------


@app.command()
def serve(
    refresh: Annotated[bool, typer.Option(
        help="Ask the running server to register tables created since it started, wait, print them.")] = False,
) -> None:
    """SQL over the lakehouse: Spark's Thrift server (JDBC/ODBC, beeline, PyHive), read-only by default."""
    import os

    from jobs.spark_session import spark_submit_env
    from streamlake.serve import refresh as refresh_server
    from streamlake.serve import server_command

    settings = _settings()
    if refresh:
        result = refresh_server(settings)
        if not result.running:
            typer.echo(f"no SQL server running on this machine (no live {settings.serve.state_file}); a server registers new "
                       f"tables at its next start and every {settings.serve.refresh_interval_s:g} s")
            return
        typer.echo(f"registered {len(result.tables)} tables; new: {', '.join(result.created) or 'none'}")
        for table in result.tables:
            typer.echo(table)
        return
    try:
        from jobs.thrift_server import serving_conf

        serving_conf(settings)  # a bad combination (password without a file) exits 2 before Spark starts
        command = server_command(settings, _state["env"])
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
    # exec: SIGTERM from an orchestrator or docker reaches spark-submit directly.
    os.execve(command[0], command, spark_submit_env(dict(os.environ)))


def _bad_argument(argument: str, message: object) -> typer.Exit:
    typer.echo(f"argument {argument}: {message}", err=True)
    return typer.Exit(2)


def _read_new_password(name: str, from_stdin: bool) -> str:
    import sys

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _bad_argument("--password-stdin", "no password on the first line of stdin")
        return password
    # Prompts go to stderr, so stdout holds only the printed line (`>> file` works).
    password = typer.prompt(f"Password for {name}", hide_input=True, default="", show_default=False, err=True)
    if not password:
        raise _bad_argument("password", "must not be empty")
    if typer.prompt("Repeat the password", hide_input=True, default="", show_default=False, err=True) != password:
        raise _bad_argument("password", "the two entries do not match; nothing was written")
    return password


@app.command("serve-user")
def serve_user(
    name: Annotated[str, typer.Argument(help="The user name clients log in with (no ':').")],
    password_file: Annotated[Path | None, typer.Option(
        help="Add the user's line to this file or replace it there (a new file is created mode 0600); without it the "
             "line is printed.")] = None,
    password_stdin: Annotated[bool, typer.Option(
        help="Read the password from the first line of stdin instead of prompting twice (for scripts).")] = False,
    remove: Annotated[bool, typer.Option(help="Remove the user's line from --password-file instead.")] = False,
) -> None:
    """A user of the SQL server's password authentication (serve.password_file): its hashed line,
    printed or written into the file; the server reads the file at each login, no restart needed."""
    from streamlake.serve_users import PasswordFileError, check_password, check_user, password_line, remove_user, set_user

    try:
        check_user(name)
    except PasswordFileError as exc:
        raise _bad_argument("NAME", exc) from None
    if remove:
        if password_file is None:
            raise _bad_argument("--remove", "needs --password-file, the file to remove the user from")
        try:
            removed = remove_user(password_file, name)
        except PasswordFileError as exc:
            raise _bad_argument("--password-file", exc) from None
        typer.echo(f"removed user {name} from {password_file}" if removed else f"no user {name} in {password_file}")
        return
    password = _read_new_password(name, password_stdin)
    try:
        check_password(password)
    except PasswordFileError as exc:
        raise _bad_argument("--password-stdin" if password_stdin else "password", exc) from None
    if any(ch.isspace() for ch in password):
        typer.echo("note: beeline cannot pass a password with spaces (it splits -p and -w at spaces); "
                   "JDBC, ODBC and PyHive can", err=True)
    if password_file is None:
        typer.echo(password_line(name, password))
        return
    try:
        replaced = set_user(password_file, name, password)
    except PasswordFileError as exc:
        raise _bad_argument("--password-file", exc) from None
    done = f"replaced the password of user {name} in" if replaced else f"added user {name} to"
    typer.echo(f"{done} {password_file}; it applies from the next login")


# -- airflow ----------------------------------------------------------------------------------


@app.command("airflow")
def airflow_local(
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port of Airflow's UI on 127.0.0.1 (default 8090).")] = None,
    print_env: Annotated[bool, typer.Option(
        help="Print the environment as shell exports and exit (e.g. for `airflow dags test`).")] = False,
    command: Annotated[list[str] | None, typer.Argument(
        help="Instead of `airflow standalone`, exec this Airflow command, after `--` (e.g. `-- scheduler`): one component of "
             "a deployment, whose own AIRFLOW_HOME, metadata DB and API address, set in the environment, are kept.")] = None,
) -> None:
    """A local Airflow (`airflow standalone`): SQLite metadata under var/airflow, the dags/ folder, the Spark connection."""
    import os
    import shlex
    import sys

    from streamlake.airflow_env import AIRFLOW_HOME, DAGS_DIR, DEFAULT_PORT, airflow_environment, build_py_files

    settings = _settings()
    port = port or DEFAULT_PORT
    try:
        env = airflow_environment(settings, port=port)
    except ConfigError as exc:  # e.g. no jars yet
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
    if command:
        _exec_airflow_command(settings, command, port)
    if print_env:
        for key, value in env.items():
            typer.echo(f"export {key}={shlex.quote(value)}")
        return
    # The jobs import the project from this archive: rebuilt at each start, never stale.
    py_files = build_py_files()
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    typer.echo(f"Airflow UI on http://127.0.0.1:{port} (user admin; `airflow standalone` prints the password below and keeps it in "
               f"{AIRFLOW_HOME / 'simple_auth_manager_passwords.json.generated'})")
    typer.echo(f"DAGs from {DAGS_DIR}, Spark master {settings.spark.master}, py_files {py_files}, lakehouse {settings.lakehouse.root}")
    airflow = str(Path(sys.executable).parent / "airflow")
    # exec: Ctrl-C and SIGTERM reach Airflow directly, which stops what it started.
    os.execve(airflow, [airflow, "standalone"], {**os.environ, **env})


def _exec_airflow_command(settings: Settings, command: list[str], port: int) -> None:
    """Exec `airflow <command>` as a deployment's component (docker-compose.yml runs each one so):
    its DAG environment derived here, as for the local Airflow, nothing typed in the deployment twice."""
    import os
    import sys

    from streamlake.airflow_env import deployment_environment

    env = deployment_environment(settings, dict(os.environ), port=port)
    airflow = str(Path(sys.executable).parent / "airflow")
    # exec: the container's SIGTERM reaches Airflow directly.
    os.execve(airflow, [airflow, *command], env)
