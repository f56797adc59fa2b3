"""The dataset registry: which datasets exist, their contract, business key and Kafka names.

An unknown dataset name is an error everywhere (API, jobs, CLI); nothing ever creates a topic or a
path for a name that is not registered here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.orders import OrderV1
from contracts.user_events import UserEventV1

TOPIC_PREFIX = "streamlake"


class UnknownDatasetError(LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        self.known = sorted(DATASETS)
        super().__init__(f"unknown dataset {name!r}; known datasets: {', '.join(self.known)}")


@dataclass(frozen=True)
class DatasetContract:
    name: str
    version: str
    model: type[BaseModel]
    business_key: str
    description: str

    @property
    def raw_topic(self) -> str:
        return f"{TOPIC_PREFIX}.{self.name}.raw"

    @property
    def dlq_topic(self) -> str:
        return f"{TOPIC_PREFIX}.{self.name}.dlq"

    @property
    def consumer_group(self) -> str:
        return f"{TOPIC_PREFIX}-consumer-{self.name}"

    def key_of(self, event: BaseModel) -> bytes:
        return str(getattr(event, self.business_key)).encode()


_CONTRACTS = (
    DatasetContract(
        name="user_events",
        version="v1",
        model=UserEventV1,
        business_key="user_id",
        description="User actions on web and mobile (login, click, purchase, logout).",
    ),
    DatasetContract(
        name="orders",
        version="v1",
        model=OrderV1,
        business_key="order_id",
        description="Order lifecycle changes with amount, currency and line items.",
    ),
)

DATASETS: dict[str, DatasetContract] = {c.name: c for c in _CONTRACTS}


def get_contract(name: str) -> DatasetContract:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(name) from None
