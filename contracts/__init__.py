"""Event contracts: the single source of truth for every dataset's fields, key, version and topics.

Pure Python and Pydantic only; `contracts.spark_schema` (which imports pyspark) derives the Spark
schemas from these models and is used by jobs, never by the API.
"""

from contracts.registry import DATASETS, DatasetContract, UnknownDatasetError, get_contract

__all__ = ["DATASETS", "DatasetContract", "UnknownDatasetError", "get_contract"]
