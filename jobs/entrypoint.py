"""The command line every dataset job shares: `--dataset`, `--env`, `--available-now`, and exit
status 2 for a configuration error (bad setting or unknown dataset), before any Spark starts."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from conf.logging import configure_logging
from conf.settings import ConfigError, Settings, load_settings
from contracts.registry import UnknownDatasetError, get_contract

log = logging.getLogger("streamlake.jobs")


def dataset_job_main(
    description: str, run: Callable[..., int], argv: list[str] | None = None, available_now_help: str = ""
) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--env", default=None)
    parser.add_argument("--available-now", action="store_true", help=available_now_help or "process what is there now, then exit")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings: Settings = load_settings(args.env)
        get_contract(args.dataset)
    except (ConfigError, UnknownDatasetError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 2
    return run(settings, args.dataset, available_now=args.available_now)
