"""The envelope every event travels in on Kafka, defined once.

The Kafka record for an event is:
  key     = the dataset's business key, as UTF-8 text (so ordering holds per key)
  value   = JSON of `Envelope` (metadata fields + `payload`, the contract model)
  headers = the same metadata, so consumers can route or inspect without parsing the value
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

if TYPE_CHECKING:
    from contracts.registry import DatasetContract

PayloadT = TypeVar("PayloadT", bound=BaseModel)

# Header names carry a prefix so they never collide with headers set by other producers.
HEADER_PREFIX = "streamlake."
METADATA_FIELDS = ("ingestion_id", "received_at", "dataset", "schema_version", "producer")


class EnvelopeMetadata(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    ingestion_id: UUID
    received_at: AwareDatetime
    dataset: str
    schema_version: str
    producer: str

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        values = self.model_dump(mode="json")
        return [(HEADER_PREFIX + name, str(values[name]).encode()) for name in METADATA_FIELDS]


class Envelope(EnvelopeMetadata, Generic[PayloadT]):
    payload: PayloadT


@cache
def envelope_model(payload_model: type[BaseModel]) -> type[Envelope]:
    """The envelope class of one payload model, built once and kept.

    Pydantic caches parametrized generics only weakly: written inline, `Envelope[Model]` is rebuilt
    (a measurable cost per event) whenever the garbage collector has freed it, every few events under
    load in the ingestion API's profile.
    """
    return Envelope[payload_model]


def wrap(
    contract: DatasetContract,
    event: BaseModel,
    producer: str,
    *,
    ingestion_id: UUID | None = None,
    received_at: datetime | None = None,
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Return (key, value, headers) of the Kafka record for one validated event."""
    envelope = envelope_model(contract.model)(
        ingestion_id=ingestion_id or uuid4(),
        received_at=received_at or datetime.now(UTC),
        dataset=contract.name,
        schema_version=contract.version,
        producer=producer,
        payload=event,
    )
    return contract.key_of(event), envelope.model_dump_json().encode(), envelope.kafka_headers()


# Stand in for the ingestion id and the receive time while a dataset's envelope is serialized once.
_ID_PLACEHOLDER = UUID(int=0)
_RECEIVED_AT_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)
# The receive time as the envelope validates (strict, timezone-aware) and serializes it.
_RECEIVED_AT = TypeAdapter(AwareDatetime, config=ConfigDict(strict=True))


@dataclass(frozen=True, slots=True)
class _EnvelopeTemplate:
    """One dataset's envelope (for one producer) as bytes, with gaps for the id and the receive time.

    value = head + id + middle + received_at + tail + payload + b"}"
    """

    head: bytes
    middle: bytes
    tail: bytes
    id_header: str
    received_at_header: str
    shared_headers: tuple[tuple[str, bytes], ...]


@cache
def _envelope_template(contract: DatasetContract, producer: str) -> _EnvelopeTemplate:
    metadata = EnvelopeMetadata(
        ingestion_id=_ID_PLACEHOLDER, received_at=_RECEIVED_AT_PLACEHOLDER, dataset=contract.name,
        schema_version=contract.version, producer=producer,
    )
    # The id and the time are the first two fields, so their first occurrences are the ones: a
    # producer name that contains either placeholder comes later.
    head, _, rest = metadata.model_dump_json().encode().partition(str(_ID_PLACEHOLDER).encode())
    middle, _, tail = rest.partition(_received_at_text(_RECEIVED_AT_PLACEHOLDER))
    (id_header, _), (received_at_header, _), *shared_headers = metadata.kafka_headers()
    return _EnvelopeTemplate(
        head=head, middle=middle, tail=tail[:-1] + b',"payload":',  # reopen the object for the payload
        id_header=id_header, received_at_header=received_at_header, shared_headers=tuple(shared_headers),
    )


def _received_at_text(received_at: datetime) -> bytes:
    return _RECEIVED_AT.dump_json(_RECEIVED_AT.validate_python(received_at))[1:-1]  # without the quotes


def wrap_many(
    contract: DatasetContract,
    events: Sequence[BaseModel],
    producer: str,
    *,
    ingestion_ids: Sequence[UUID],
    received_at: datetime,
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """`wrap()` for the events of one request: the same records, byte for byte, at a fraction of the cost.

    Each dataset's metadata is validated and serialized once per producer, by `EnvelopeMetadata`,
    into a template; each record splices its ingestion id, the request's receive time and its
    payload's own JSON into that. It relies on `Envelope` dumping the metadata fields first (id and
    time leading) and `payload` last; a test holds every dataset's output equal to `wrap()`'s.
    """
    template = _envelope_template(contract, producer)
    time_text = _received_at_text(received_at)
    time_header = (template.received_at_header, time_text)
    head_to_id, id_to_time = template.head, template.middle + time_text + template.tail
    records = []
    for event, ingestion_id in zip(events, ingestion_ids, strict=True):
        text = str(ingestion_id).encode()
        payload = event.__pydantic_serializer__.to_json(event)
        value = b"".join((head_to_id, text, id_to_time, payload, b"}"))
        headers = [(template.id_header, text), time_header, *template.shared_headers]
        records.append((contract.key_of(event), value, headers))
    return records
