"""Bitrix24 Open Lines connector id -> the lead's channel (reference/bitrix24.md §2.5). Unknown ids pass through
raw (and are counted), never dropped."""

from __future__ import annotations

import re

from leadbridge.lead import Channel

ONLINE_CHAT = "livechat"
MESSENGER_BY_CONNECTOR: dict[str, str] = {
    "telegrambot": "telegram",
    "telegram": "telegram",
    "whatsappbyedna": "whatsapp",
    "whatsappbytwilio": "whatsapp",
    "vkgroup": "vk",
    "ok": "ok",
    "facebook": "facebook",
    "facebookcomments": "facebook",
    "fbinstagramdirect": "instagram",
    "fbinstagram": "instagram",
    "instagram": "instagram",
    "viber": "viber",
    "avito": "avito",
    "olx": "olx",
    "imessage": "imessage",
    "network": "bitrix24_network",
    "yandex": "yandex",
    "wechat": "wechat",
    "botframework": "botframework",
    "notifications": "notifications",
}
# SOURCE_ID "<line>|<TYPE>" that Open Lines writes when it creates the source itself (core source, §2.3).
_CONNECTOR_BY_SOURCE_TYPE = {
    "TELEGRAM": "telegrambot",
    "OPENLINE": "livechat",
    "VK": "vkgroup",
    "FACEBOOK": "facebook",
    "VIBER": "viber",
    "INSTAGRAM": "fbinstagramdirect",
    "BITRIX24": "network",
}
OPEN_LINES_SOURCE = re.compile(r"^\d+\|([A-Z0-9_]+)$")


def channel_for_connector(connector: str | None) -> tuple[Channel, bool]:
    raw = (connector or "").strip()
    key = raw.lower()
    if key == ONLINE_CHAT:
        return Channel(kind="online_chat", messenger=None, origin=raw), True
    if key in MESSENGER_BY_CONNECTOR:
        return Channel(kind="messenger", messenger=MESSENGER_BY_CONNECTOR[key], origin=raw), True
    return Channel(kind="messenger", messenger=raw or None, origin=raw or None), False


def connector_from_source_id(source_id: str | None) -> str | None:
    match = OPEN_LINES_SOURCE.match(source_id or "")
    if match is None:
        return None
    return _CONNECTOR_BY_SOURCE_TYPE.get(match[1], match[1].lower())


def connector_from_imol(value: str | None) -> str | None:
    """``imol|<connector>|<line>|<chat>|<user>`` (the IM multifield of an open-lines lead or contact)."""
    if not value or not value.startswith("imol|"):
        return None
    parts = value.split("|")
    return parts[1] if len(parts) > 1 and parts[1] else None
