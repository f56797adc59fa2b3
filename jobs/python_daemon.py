"""Spark's Python worker daemon (`pyspark.daemon`), minus two per-task costs.

Spark starts it as `python -m jobs.python_daemon pyspark.worker` (`spark.python.daemon.module`,
set in `jobs.spark_session`), the way Spark's own test coverage swaps in its daemon. It changes two
things and then runs `pyspark.daemon` unchanged; the daemon forks one worker per concurrent task.

1. Zips keep their directories. Before every task, PySpark calls `importlib.invalidate_caches()`.
   On Python 3.10 and 3.11 that makes every zip on `sys.path` re-read its whole directory (CPython
   gh-103200, fixed in 3.12; Spark SPARK-54744 stops the call upstream). Spark puts `pyspark.zip`,
   py4j's zip and spark-core's jar (thousands of entries) on the workers' path. Re-reading them
   cost every task more than a small Bronze task spends on its records (docs/decisions.md). Those
   archives do not change while a worker lives, and a zip a job adds (`addPyFile`) is a new path
   with a fresh importer, so their directories are kept. Once the workers run Python 3.12+, or a
   Spark that carries SPARK-54744, this part can go.
2. The workers' modules are imported once, here, and frozen before any worker is forked. After
   every task PySpark's daemon runs a full `gc.collect()` in the worker, which walks every object
   the worker holds (pyarrow, pandas, which pyarrow imports, pydantic and the contracts), paid
   again by each of a batch's tasks. Objects imported before the fork and then
   frozen (`gc.freeze()`, the recipe the gc module documents for pre-fork servers) are left out of
   every collection, and each new worker starts with its imports done instead of paying for them in
   its first task.
"""

from __future__ import annotations

import gc
import importlib
import runpy
import sys
import zipimport

# What a worker runs: PySpark's worker itself, and what the tasks' Python code imports, Bronze's
# verdict and DLQ sender (pydantic, the contracts, pyarrow's JSON reader, confluent-kafka) and
# pandas, which pyarrow loads on first use.
WORKER_MODULES = ("pyspark.worker", "pandas", "pyarrow.compute", "pyarrow.json", "pipelines.bronze_verdict", "jobs.bronze_dlq")


def keep_zip_directories() -> None:
    """Make `invalidate_caches()` leave zip importers' directories alone, where it re-reads them."""
    if sys.version_info < (3, 12):
        zipimport.zipimporter.invalidate_caches = lambda self: None


def preload_worker_modules(modules: tuple[str, ...] = WORKER_MODULES) -> None:
    """Import `modules` and freeze everything alive, so that forked workers share it and their
    per-task collections never walk it."""
    for module in modules:
        importlib.import_module(module)
    gc.collect()  # what importing left behind goes now, not frozen forever
    gc.freeze()


if __name__ == "__main__":
    keep_zip_directories()
    preload_worker_modules()
    # `alter_sys` keeps sys.argv[1:] (the worker module Spark names) for pyspark.daemon to read.
    runpy.run_module("pyspark.daemon", run_name="__main__", alter_sys=True)
