"""What the cabinet's pickers read from a customer's CRM (each CRM's ``lists.py`` answers it): the custom fields
that could hold the session, the channels the account can produce (with the key ``messenger_targets`` uses), and
the pipelines with their stages. Plain values: the API shows them, the cache stores them as JSON."""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

ListKind = Literal["fields", "channels", "pipelines"]
LIST_KINDS: tuple[ListKind, ...] = ("fields", "channels", "pipelines")


class CrmField(NamedTuple):
    id: str  # amoCRM: the numeric field id; Bitrix24: the field's code (UF_CRM_...)
    name: str
    type: str  # the CRM's own type name (amoCRM ``text``, Bitrix24 ``string``...)
    entity: str  # amoCRM ``lead`` / ``contact``; Bitrix24 ``lead`` / ``deal``
    holds_session: bool  # a text the session id can be written into


class CrmChannel(NamedTuple):
    key: str | None  # what ``messenger_targets`` is keyed by (the lead's channel.messenger); None: not mappable
    name: str
    origin: str  # the CRM's raw value (amoCRM talk origin, Bitrix24 connector id)
    where: str  # how it was found: ``account_chats``, ``account_source``, ``known_origin``, ``open_line ...``


class CrmStage(NamedTuple):
    id: str
    name: str


class CrmPipeline(NamedTuple):
    id: str
    name: str
    entity: str  # amoCRM ``lead``; Bitrix24 ``lead`` (the lead statuses) or ``deal`` (a deal category)
    stages: list[CrmStage]


class CrmLists(Protocol):
    def fields(self) -> list[CrmField]: ...

    def channels(self) -> list[CrmChannel]: ...

    def pipelines(self) -> list[CrmPipeline]: ...
