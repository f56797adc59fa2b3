"""Bronze's verdict over the Arrow batches Spark's Python workers see (pure).

Every record of a batch gets exactly one verdict, from the contract's own Pydantic model
(`pipelines.record_checks`): `error` is null (valid) or a struct(error_class, error_reason,
error_stack_trace) (invalid; a stack trace only when judging the record raised), so valid + invalid
== batch by construction. A valid value comes back in canonical JSON, which Arrow's JSON reader
parses against the contract's schema (never inference) into the typed `envelope` column, in the same
worker: Spark receives typed columns, not text to parse again. An invalid record becomes a DLQ
record (`dlq_records`) with its key, value and headers untouched. `batch_tally` says what a batch
held, for the job's log line.

Runs inside Spark's Python workers: no Spark calls, no network, no environment.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as arrow_json
from pyspark.sql.pandas.types import to_arrow_type
from pyspark.sql.types import StringType, StructField, StructType

from pipelines.record_checks import WRONG_TYPE, judged_safely, record_classifier

DLQ_HEADER_PREFIX = "dlq."
ERROR_TYPE = StructType([
    StructField("error_class", StringType(), True),
    StructField("error_reason", StringType(), True),
    StructField("error_stack_trace", StringType(), True),
])
UNREADABLE_REASON = "valid for the contract, but not readable into Bronze's Spark schema"


def _read_json_lines(values: list[bytes], schema: pa.Schema) -> pa.StructArray:
    if not values:
        return pa.array([], pa.struct(list(schema)))
    data = b"\n".join(values)  # JSON text never holds a raw newline: one record per line
    table = arrow_json.read_json(
        io.BytesIO(data),
        # One block, sized to the data (a block must hold whole records): a small batch does not
        # pay for a large block.
        read_options=arrow_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=arrow_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    return table.to_struct_array().combine_chunks()


def typed_envelopes(canonical_values: list[bytes | None], schema: pa.Schema) -> tuple[pa.StructArray, dict[int, str]]:
    """Canonical JSON values read into one struct array of `schema`, null where a value is None.

    Also returns, by position, the values Arrow could not read, with its reason. Pydantic's canonical
    JSON always fits the contract's schema in practice; if one ever does not, only that record is
    set apart (it goes to the DLQ), never the batch. Arrow does not check a decimal's precision
    when the text has fewer places than the type ("12" into DECIMAL(3,2) reads as 12.00); the model
    has already enforced max_digits and decimal_places, the very constraints Spark's DECIMAL(p,s)
    is derived from (`contracts.spark_schema`).
    """
    positions = [i for i, value in enumerate(canonical_values) if value is not None]
    unreadable: dict[int, str] = {}
    try:
        parsed = _read_json_lines([canonical_values[i] for i in positions], schema)
    except pa.ArrowInvalid:
        readable, parts = [], []
        for i in positions:
            try:
                parts.append(_read_json_lines([canonical_values[i]], schema))
                readable.append(i)
            except pa.ArrowInvalid as exc:
                unreadable[i] = str(exc)
        positions = readable
        parsed = pa.concat_arrays(parts) if parts else _read_json_lines([], schema)
    row_of: list[int | None] = [None] * len(canonical_values)
    for row, i in enumerate(positions):
        row_of[i] = row
    return parsed.take(pa.array(row_of, pa.int32())), unreadable


def classify_arrow_batches(
    batches: Iterator[pa.RecordBatch], dataset: str, max_value_bytes: int, envelope_arrow_schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """Kafka rows in, the same rows plus `envelope` (typed, null when invalid) and `error` out."""
    classify = record_classifier(dataset, max_value_bytes)
    error_fields = list(to_arrow_type(ERROR_TYPE))
    for batch in batches:
        verdicts = [judged_safely(classify, value) for value in batch.column("value").to_pylist()]
        envelope, unreadable = typed_envelopes([v.canonical_value for v in verdicts], envelope_arrow_schema)
        error_classes = [v.error_class for v in verdicts]
        error_reasons = [v.error_reason for v in verdicts]
        for i, detail in unreadable.items():
            error_classes[i], error_reasons[i] = WRONG_TYPE, f"{UNREADABLE_REASON} ({detail})"
        error = pa.StructArray.from_arrays(
            [pa.array(error_classes, pa.string()), pa.array(error_reasons, pa.string()),
             pa.array([v.stack_trace for v in verdicts], pa.string())],
            fields=error_fields,
            mask=pa.array([error_class is None for error_class in error_classes]),
        )
        yield batch.append_column("envelope", envelope).append_column("error", error)


def valid_arrow_rows(judged: pa.RecordBatch) -> pa.RecordBatch:
    """The rows of a judged Arrow batch whose verdict is valid."""
    return judged.filter(pc.is_null(judged.column("error")))


class DlqRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def _utc_millis(at: datetime | None) -> str | None:
    """2026-01-02T03:04:05.678Z: the DLQ headers' time format."""
    if at is None:
        return None
    at = at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def dlq_records(
    judged: pa.RecordBatch, job: str, failed_at: datetime, marks: tuple[tuple[str, str], ...] = ()
) -> list[DlqRecord]:
    """DLQ records for the invalid rows of a judged Arrow batch: original key, value bytes and
    headers untouched, then the reason and the source coordinates as `dlq.*` headers, then `marks`
    (more `dlq.*` headers, e.g. the replay that judged it), and the stack trace, last, when judging
    the record raised."""
    if judged.column("error").null_count == judged.num_rows:
        return []  # the usual batch: all valid
    invalid = judged.filter(pc.is_valid(judged.column("error")))
    failed = _utc_millis(failed_at)
    records = []
    for row in invalid.select(["key", "value", "topic", "partition", "offset", "timestamp", "headers", "error"]).to_pylist():
        dlq_headers = {
            "error.class": row["error"]["error_class"],
            "error.reason": row["error"]["error_reason"],
            "source.topic": row["topic"],
            "source.partition": str(row["partition"]),
            "source.offset": str(row["offset"]),
            "source.timestamp": _utc_millis(row["timestamp"]),
            "failed.at": failed,
            "job": job,
            **dict(marks),
        }
        if row["error"]["error_stack_trace"] is not None:
            dlq_headers["error.stack_trace"] = row["error"]["error_stack_trace"]
        headers = [(h["key"], h["value"]) for h in row["headers"] or []]
        headers += [(DLQ_HEADER_PREFIX + name, None if text is None else text.encode()) for name, text in dlq_headers.items()]
        records.append(DlqRecord(row["key"], row["value"], headers))
    return records


def batch_tally(judged: pa.RecordBatch) -> dict:
    """What a judged Arrow batch held: rows, invalid rows by error class, and per Kafka partition
    the first and last offset. Tallies of several batches add up with `merge_tallies`."""
    classes = judged.column("error").field("error_class")
    invalid = pc.value_counts(classes.filter(pc.is_valid(classes))).to_pylist() if classes.null_count < len(classes) else []
    partitions, offsets = judged.column("partition"), judged.column("offset")
    present = pc.unique(partitions)
    ranges = {}
    for partition in present.to_pylist():
        # A Spark task reads one Kafka partition, so a batch almost always holds one: nothing to pick out.
        first_last = pc.min_max(offsets if len(present) == 1 else offsets.filter(pc.equal(partitions, partition)))
        ranges[str(partition)] = [first_last["min"].as_py(), first_last["max"].as_py()]
    return {"rows": judged.num_rows, "invalid": {c["values"]: c["counts"] for c in invalid}, "offsets": ranges}


def empty_tally() -> dict:
    return {"rows": 0, "invalid": {}, "offsets": {}}


def merge_tallies(total: dict, more: dict) -> dict:
    """`total` with `more` added in (in place, and returned)."""
    total["rows"] += more["rows"]
    for error_class, n in more["invalid"].items():
        total["invalid"][error_class] = total["invalid"].get(error_class, 0) + n
    for partition, (first, last) in more["offsets"].items():
        known = total["offsets"].get(partition, [first, last])
        total["offsets"][partition] = [min(known[0], first), max(known[1], last)]
    return total
