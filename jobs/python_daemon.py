"""Spark's Python worker daemon (`pyspark.daemon`), minus a per-task cost Python 3.11 adds.

Spark starts it as `python -m jobs.python_daemon pyspark.worker` (`spark.python.daemon.module`,
set in `jobs.spark_session`), the way Spark's own test coverage swaps in its daemon. It changes one
thing and then runs `pyspark.daemon` unchanged.

Before every task, PySpark calls `importlib.invalidate_caches()`. On Python 3.10 and 3.11 that makes
every zip on `sys.path` re-read its whole directory (CPython gh-103200, fixed in 3.12; Spark
SPARK-54744 stops the call upstream). Spark puts `pyspark.zip`, py4j's zip and spark-core's jar
(5,000+ entries) on the workers' path. Re-reading them took ~150 ms of every task here, more than
a 1,000-record Bronze task spends on its records. Those archives do not change while a worker lives,
and a zip a job adds (`addPyFile`) is a new path with a fresh importer, so their directories are kept.
Once the workers run Python 3.12+, or a Spark that carries SPARK-54744, this module can go.
"""

from __future__ import annotations

import runpy
import sys
import zipimport


def keep_zip_directories() -> None:
    """Make `invalidate_caches()` leave zip importers' directories alone, where it re-reads them."""
    if sys.version_info < (3, 12):
        zipimport.zipimporter.invalidate_caches = lambda self: None


if __name__ == "__main__":
    keep_zip_directories()
    # `alter_sys` keeps sys.argv[1:] (the worker module Spark names) for pyspark.daemon to read.
    runpy.run_module("pyspark.daemon", run_name="__main__", alter_sys=True)
