"""Bitrix24 Open Lines connector id -> the lead's channel, as data: one row per known connector, with its source.

Connectors come from Bitrix24 itself and from Marketplace vendors (Wazzup, ChatApp...), some of which run several
messengers. A connector is mapped only when it is known exactly, or by a pattern that names the messenger itself
(``wz_whatsapp_<hash>``, ``ank_chats_app24_telegram``); never by a vendor's prefix alone. Anything unknown passes
through raw (and is counted in the status). ``docs/channels.md`` shows the same table (a test keeps them equal).
Sources: reference/bitrix24.md §2.5 (connector ids in the core source and the docs).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from leadbridge.contract.lead import Channel

ONLINE_CHAT = "livechat"


class Connector(NamedTuple):
    messenger: str | None  # None: the site's own live chat widget
    source: str


CONNECTORS: dict[str, Connector] = {
    "livechat": Connector(None, "Bitrix24 core (imconnector): the site live chat widget"),
    "telegrambot": Connector("telegram", "Bitrix24 core (imconnector)"),
    "telegram": Connector("telegram", "Bitrix24 docs (connector list)"),
    "whatsappbyedna": Connector("whatsapp", "Bitrix24 core (imconnector): WhatsApp by Edna"),
    "whatsappbytwilio": Connector("whatsapp", "Bitrix24 core (imconnector): WhatsApp by Twilio"),
    "vkgroup": Connector("vk", "Bitrix24 core (imconnector)"),
    "vkgrouporder": Connector("vk", "Bitrix24 core (imconnector): VK orders"),
    "ok": Connector("ok", "Bitrix24 core (imconnector): Odnoklassniki"),
    "facebook": Connector("facebook", "Bitrix24 core (imconnector)"),
    "facebookcomments": Connector("facebook", "Bitrix24 core (imconnector)"),
    "facebookmessenger": Connector("facebook", "Bitrix24 core (imconnector): Facebook Messenger"),
    "fbinstagramdirect": Connector("instagram", "Bitrix24 core (imconnector)"),
    "fbinstagram": Connector("instagram", "Bitrix24 core (imconnector)"),
    "instagram": Connector("instagram", "Bitrix24 docs (connector list)"),
    "viber": Connector("viber", "Bitrix24 core (imconnector)"),
    "avito": Connector("avito", "Bitrix24 core (imconnector)"),
    "olx": Connector("olx", "Bitrix24 core (imconnector)"),
    "imessage": Connector("imessage", "Bitrix24 core (imconnector)"),
    "network": Connector("bitrix24_network", "Bitrix24 core (imconnector): Bitrix24.Network"),
    "yandex": Connector("yandex", "Bitrix24 core (imconnector)"),
    "wechat": Connector("wechat", "Bitrix24 core (imconnector)"),
    "botframework": Connector("botframework", "Bitrix24 core (imconnector)"),
    "notifications": Connector("notifications", "Bitrix24 core (imconnector): SMS / WhatsApp notifications"),
}
_MESSENGERS = "whatsapp|telegram|instagram|vk|viber|avito|facebook"
# (pattern, group that names the messenger, source)
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^wz_({_MESSENGERS})_[0-9a-z]+$"), "Wazzup's Bitrix24 connectors: wz_<messenger>_<hash>"),
    (re.compile(rf"^ank_chats_app24_({_MESSENGERS})$"), "ChatApp's Bitrix24 connectors: ank_chats_app24_<messenger>"),
)
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
    raw = (connector or "").strip()[:200]
    key = raw.lower()
    known = CONNECTORS.get(key)
    if known is not None:
        if known.messenger is None:
            return Channel(kind="online_chat", messenger=None, origin=raw), True
        return Channel(kind="messenger", messenger=known.messenger, origin=raw), True
    for pattern, _ in PATTERNS:
        match = pattern.fullmatch(key)
        if match:
            return Channel(kind="messenger", messenger=match[1], origin=raw), True
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
