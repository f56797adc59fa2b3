"""The one module that speaks Great Expectations 1.x: a StreamLake `Suite` run on a Spark frame.

The context is ephemeral (no project folder, nothing to keep in git): suites and checkpoints are
built in memory on each run, from code. Only the validation results are kept, in a file-backed store
under `<lakehouse>/_quality/ge_results/`, and Data Docs are rendered from that store to
`<lakehouse>/_quality/data_docs/`, so the docs list every run of every suite, whichever process
ran it. Imported lazily: the library takes seconds to import, and only the batch jobs need it.
"""

from __future__ import annotations

import os

# No usage statistics: this platform makes no calls to outside services (and here cannot).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from functools import cache
from typing import Any

import great_expectations as gx
from great_expectations.core.expectation_suite import ExpectationSuite
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig
from great_expectations.expectations.expectation import Expectation as GxExpectation
from great_expectations.expectations.registry import get_expectation_impl
from pyspark.sql import DataFrame, SparkSession

DOCS_SITE = "streamlake"
_INDEX = "streamlake_index"
# Counts without sample values: half the Spark jobs of GE's default (SUMMARY) for the same verdicts
# and unexpected counts; the quarantine table and the job's log say which rows, not Data Docs.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


def _config(results_dir: str, docs_dir: str) -> DataContextConfig:
    in_memory = {"class_name": "InMemoryStoreBackend"}
    return DataContextConfig(
        stores={
            "expectations_store": {"class_name": "ExpectationsStore", "store_backend": in_memory},
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": results_dir},
            },
            "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": in_memory},
            "validation_definition_store": {"class_name": "ValidationDefinitionStore", "store_backend": in_memory},
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        # A job's log is JSON lines; a progress bar on stderr would break them.
        progress_bars=ProgressBarsConfig(globally=False),
    )


@cache
def _context(results_dir: str, docs_dir: str) -> Any:
    os.makedirs(results_dir, exist_ok=True)
    os.makedirs(docs_dir, exist_ok=True)
    context = gx.get_context(mode="ephemeral", project_config=_config(results_dir, docs_dir))
    # The jobs materialize what they validate themselves; GE's own cache would never be released.
    context.data_sources.add_spark(name="spark", persist=False)
    return context


def _gx_expectation(expectation: Any, index: int) -> GxExpectation:
    # The index in `meta` ties each result back to its expectation (GE does not keep the order).
    return get_expectation_impl(expectation.type)(**expectation.kwargs, severity=expectation.severity, meta={_INDEX: index})


def validate(
    spark: SparkSession, suite: Any, df: DataFrame, run_name: str, results_dir: str, docs_dir: str
) -> list[tuple[Any, dict[str, Any]]]:
    """Run `suite` (a `jobs.quality.Suite`) on `df`; store the result under `run_name` (the job's
    run id, so Data Docs and the run's own records name the same run) and update Data Docs.

    Returns each expectation with its result: success, unexpected_count, element_count.
    """
    context = _context(results_dir, docs_dir)
    datasource = context.data_sources.get("spark")
    if suite.name in datasource.get_asset_names():
        batch = datasource.get_asset(suite.name).batch_definitions[0]
    else:
        batch = datasource.add_dataframe_asset(name=suite.name).add_batch_definition_whole_dataframe(suite.name)
    gx_suite = context.suites.add_or_update(
        ExpectationSuite(name=suite.name, expectations=[_gx_expectation(e, i) for i, e in enumerate(suite.expectations)])
    )
    definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=suite.name, validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])], result_format=_RESULT_FORMAT,
    ))
    outcome = checkpoint.run(batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=run_name))
    (run_result,) = outcome.run_results.values()
    by_index = {}
    for item in run_result.results:
        result = item.result or {}
        by_index[item.expectation_config.meta[_INDEX]] = {
            "success": bool(item.success),
            "unexpected_count": result.get("unexpected_count"),
            "element_count": result.get("element_count"),
        }
    return [(e, by_index[i]) for i, e in enumerate(suite.expectations)]
