"""What the cabinet's chat backend hands over (visitor messages, delivery reports), validated at the API, and what
it becomes for amojo (reference D.4: ``new_message`` from a client carries only ``sender``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
MessageId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]
AttachmentType = Literal["picture", "file", "video", "voice", "audio"]
DELIVERY_CODES = {"delivered": 1, "read": 2, "failed": -1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Attachment(_Strict):
    type: AttachmentType
    url: str = Field(pattern=r"^https://[^\s]{1,2000}$", description="Where amoCRM downloads it (https).")
    file_name: str = Field(default="", max_length=255)
    file_size: int = Field(default=0, ge=0, le=2**40)


class VisitorMessage(_Strict):
    conversation_id: Ident = Field(description="The cabinet chat's conversation: one amoCRM chat, one request.")
    message_id: MessageId = Field(description="Unique per message: a second send of the same id does nothing.")
    visitor_id: Ident
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    email: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$", description="The analytics session the visitor is in."
    )
    text: str | None = Field(default=None, max_length=4000)
    attachment: Attachment | None = None
    sent_at: AwareDatetime | None = Field(default=None, description="When the visitor sent it; default: now.")

    @model_validator(mode="after")
    def _has_content(self) -> VisitorMessage:
        if not self.text and self.attachment is None:
            raise ValueError("a message needs text or an attachment")
        return self


class VisitorMessages(_Strict):
    messages: list[VisitorMessage] = Field(min_length=1, max_length=50)


class MessagesAccepted(_Strict):
    accepted: int


class DeliveryReport(_Strict):
    message_id: MessageId = Field(description="amoCRM's id of the reply (``message_id`` on the replies queue).")
    status: Literal["delivered", "read", "failed"]
    error: str | None = Field(default=None, max_length=300)


class ChannelConnect(_Strict):
    title: str = Field(default="leadbridge", min_length=1, max_length=100)


def message_payload(message: dict[str, Any], chat_ref: str | None) -> dict[str, Any]:
    """The ``new_message`` payload of a visitor's message (a stored ``VisitorMessage`` as JSON)."""
    sent = sent_at(message)
    attachment = message.get("attachment")
    body: dict[str, Any]
    if isinstance(attachment, dict):
        body = {
            "type": attachment["type"],
            "media": attachment["url"],
            "file_name": attachment.get("file_name") or "",
            "file_size": int(attachment.get("file_size") or 0),
        }
        if message.get("text"):
            body["text"] = message["text"]
    else:
        body = {"type": "text", "text": message.get("text") or ""}
    payload: dict[str, Any] = {
        "timestamp": int(sent.timestamp()),
        "msec_timestamp": int(sent.timestamp() * 1000),
        "msgid": message["message_id"],
        "conversation_id": message["conversation_id"],
        "sender": chat_user(message),
        "message": body,
        "silent": False,
    }
    if chat_ref:
        payload["conversation_ref_id"] = chat_ref
    return payload


def chat_user(message: dict[str, Any]) -> dict[str, Any]:
    """The visitor as amojo's ``user`` / ``sender``: the profile goes into the amoCRM contact."""
    user: dict[str, Any] = {"id": message["visitor_id"], "name": message.get("name") or "Посетитель сайта"}
    profile = {k: message[k] for k in ("phone", "email") if message.get(k)}
    if profile:
        user["profile"] = profile
    return user


def sent_at(message: dict[str, Any]) -> datetime:
    raw = message.get("sent_at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    return datetime.now(UTC)
