"""The verdict on one raw Kafka value: valid, or invalid with an error class and a reason (pure).

The judge is the dataset's Pydantic envelope model itself, strict, the very model the ingestion API
validates with: a record the API would reject is exactly a record Bronze sends to the DLQ, for the
same reason, and no second set of rules can drift from the contract. A valid value also comes back
in canonical JSON (the model's own serialization: UTC-zoned timestamps, decimals as text), which is
what Spark parses into Bronze's typed columns, so Spark never meets a format only Pydantic accepts.

Runs once per record inside Spark's Python workers (`pipelines.bronze_verdict`); it must not touch Spark,
the network or the environment.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from pydantic import ValidationError

from contracts.base import field_path
from contracts.envelope import envelope_model
from contracts.registry import DatasetContract, get_contract

OVERSIZED = "oversized"
NOT_UTF8 = "not_utf8"
MALFORMED_JSON = "malformed_json"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
OUT_OF_CONTRACT = "out_of_contract"
CLASSIFIER_ERROR = "classifier_error"

# Pydantic error types that mean "the right type, but a value the contract does not allow";
# every other error type means the value is not of the field's type at all.
_CONTRACT_RULE_ERRORS = frozenset({
    "literal_error", "enum",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "finite_number",
    "string_pattern_mismatch", "string_too_short", "string_too_long", "too_short", "too_long",
    "decimal_max_digits", "decimal_max_places", "decimal_whole_digits",
    "extra_forbidden", "uuid_version",
})
_SHOWN_INPUT_CHARS = 80
_SHOWN_ERROR_CHARS = 300
_STACK_TRACE_CHARS = 2000


class Verdict(NamedTuple):
    error_class: str | None  # None: valid
    error_reason: str | None
    canonical_value: bytes | None  # valid records only: the envelope as its model serializes it (JSON)
    stack_trace: str | None = None  # only when judging the record raised (CLASSIFIER_ERROR)


class RecordClassifier:
    """Classifies raw values of one dataset's raw topic; build it once, call it per record."""

    def __init__(self, contract: DatasetContract, max_value_bytes: int) -> None:
        self.contract = contract
        self.max_value_bytes = max_value_bytes
        model = envelope_model(contract.model)
        # The model's own validator and serializer, called directly, on bytes: the model's Python
        # wrappers (`model_validate_json`, `model_dump_json`) and a decode are a measurable share of
        # a small record's verdict (docs/decisions.md). The rules are the same.
        self._validate_json = model.__pydantic_validator__.validate_json
        self._to_json = model.__pydantic_serializer__.to_json

    def __call__(self, value: bytes | None) -> Verdict:
        if value is None:
            return Verdict(MALFORMED_JSON, "value is empty (null)", None)
        if len(value) > self.max_value_bytes:
            return Verdict(OVERSIZED, f"value is {len(value)} bytes, over the {self.max_value_bytes} byte limit", None)
        try:
            envelope = self._validate_json(value)
        except ValidationError as exc:
            return self._invalid(value, exc)
        wrong_place = self._wrong_place(envelope.schema_version, envelope.dataset)
        if wrong_place is not None:
            return wrong_place
        return Verdict(None, None, self._to_json(envelope))

    def _wrong_place(self, schema_version: Any, dataset: Any) -> Verdict | None:
        """A record of another version or dataset: its fields cannot be judged by this contract."""
        contract = self.contract
        if isinstance(schema_version, str) and schema_version != contract.version:
            return Verdict(UNKNOWN_SCHEMA_VERSION, f"unknown schema_version {schema_version!r} (known: {contract.version})", None)
        if isinstance(dataset, str) and dataset != contract.name:
            return Verdict(OUT_OF_CONTRACT, f"dataset {dataset!r} does not belong on the {contract.name} topic", None)
        return None

    def _invalid(self, value: bytes, exc: ValidationError) -> Verdict:
        try:
            # Pydantic reads bad bytes in a string as invalid JSON; they are named as such instead,
            # wherever they sit. A value that validates is UTF-8: every string in it was decoded.
            value.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return Verdict(NOT_UTF8, f"value is not valid UTF-8 (byte {decode_error.start})", None)
        errors = exc.errors(include_url=False, include_context=True)
        first = errors[0]
        if first["type"] == "json_invalid":
            return Verdict(MALFORMED_JSON, f"value is not valid JSON ({first['ctx']['error']})", None)
        if not first["loc"]:
            return Verdict(MALFORMED_JSON, "value is not a JSON object", None)
        # Only the invalid path parses twice: a newer version's record fails this version's rules
        # in many ways, and the useful reason is its version.
        document = json.loads(value)
        wrong_place = self._wrong_place(document.get("schema_version"), document.get("dataset"))
        if wrong_place is not None:
            return wrong_place
        error_class, reason = _describe(first)
        if len(errors) > 1:
            reason += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
        return Verdict(error_class, reason, None)


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    path = field_path(error["loc"])
    value = error.get("input")
    if error["type"] == "missing":
        return MISSING_FIELD, f"missing required field {path}"
    if value is None:
        return MISSING_FIELD, f"required field {path} is null"
    error_class = OUT_OF_CONTRACT if error["type"] in _CONTRACT_RULE_ERRORS else WRONG_TYPE
    shown = "" if isinstance(value, dict | list) else f" (got {_shown(value)})"
    return error_class, f"{path}: {error['msg']}{shown}"


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN_INPUT_CHARS else text[: _SHOWN_INPUT_CHARS - 3] + "..."


def judged_safely(classify: Callable[[bytes | None], Verdict], value: bytes | None) -> Verdict:
    """`classify(value)`; should judging one record raise, a verdict that says so instead.

    Every known way a record can be bad has its own class above; an exception here means a value
    nobody foresaw (or a bug in the judge). That record goes to the DLQ, with the exception and its
    stack trace (the end of it, where the failing frame is), and the rest of the batch goes on: one
    record must never stop healthy data.
    """
    try:
        return classify(value)
    except Exception as exc:  # noqa: BLE001 - whatever it is, it is this record's, not the batch's
        message = str(exc) if len(str(exc)) <= _SHOWN_ERROR_CHARS else str(exc)[: _SHOWN_ERROR_CHARS - 3] + "..."
        error = f"{type(exc).__name__}: {message}"
        trace = f"Traceback (most recent call last):\n{''.join(traceback.format_tb(exc.__traceback__))}{error}"
        if len(trace) > _STACK_TRACE_CHARS:
            trace = "..." + trace[-_STACK_TRACE_CHARS:]
        return Verdict(CLASSIFIER_ERROR, f"the record could not be judged: {error}", None, trace)


@lru_cache(maxsize=16)
def record_classifier(dataset: str, max_value_bytes: int) -> RecordClassifier:
    """One classifier per (dataset, limit) and process: Spark's Python workers call this per batch."""
    return RecordClassifier(get_contract(dataset), max_value_bytes)

