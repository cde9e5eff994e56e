"""amoCRM talk ``origin`` -> the lead's channel, as data: one row per known origin, with where the fact comes from.

Origins come from many vendors, not only amoCRM's own channels, and a vendor may run several messengers (Wazzup:
WhatsApp and Instagram), so an origin is mapped only when it is known exactly, or by a pattern that names the
messenger itself; never by a vendor's prefix alone. Anything unknown passes through raw (and is counted in the
status), never guessed. ``docs/channels.md`` shows the same table (a test keeps the two equal).
Sources: reference/amocrm.md §5.1 (Kommo frontend constants, captures, third-party handlers).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from leadbridge.contract.lead import Channel


class Origin(NamedTuple):
    messenger: str | None  # None: the site's own online chat
    source: str


ORIGINS: dict[str, Origin] = {
    "telegram": Origin("telegram", "amoCRM docs (talks API example); real captures"),
    "waba": Origin("whatsapp", "Kommo frontend constant WABA (WhatsApp Business Cloud API); real capture"),
    "com.amocrm.amocrmwa": Origin("whatsapp", "Kommo frontend constant WHATSAPP_LITE (amoCRM WhatsApp Lite)"),
    "amochats.whatsapp": Origin("whatsapp", "Kommo frontend constant WHATSAPP (older / trial WhatsApp)"),
    "com.wazzup24.wz": Origin("whatsapp", "Wazzup's WhatsApp channel (events API capture: origin com.wazzup24.wz)"),
    "com.wazzup24.insta": Origin("instagram", "Wazzup's Instagram channel"),
    "instagram_business": Origin("instagram", "Kommo frontend constant INSTAGRAM_BUSINESS; third-party handler"),
    "facebook": Origin("facebook", "Kommo frontend constant FACEBOOK"),
    "viber": Origin("viber", "amoCRM docs (talks API: «telegram, viber, и т.д.»)"),
    "vk": Origin("vk", "third-party test fixture (amoCRM RU)"),
    "avito": Origin("avito", "amoCRM RU channel name (integration settings)"),
    "tiktok-kommo": Origin("tiktok", "Kommo frontend constant TIKTOK"),
    "com.kommo.tiktokint": Origin("tiktok", "Kommo frontend constant TIKTOK"),
    "tiktok_kommo": Origin("tiktok", "Kommo frontend constant TIKTOK"),
    "whatsapp": Origin("whatsapp", "third-party test fixtures only"),
    # The site's own online chat: its origin value is not documented (reference/amocrm.md §5.1, "Not found").
    "amo_online_chat": Origin(None, "candidate name for the site online chat (undocumented)"),
    "onlinechat": Origin(None, "candidate name for the site online chat (undocumented)"),
    "online_chat": Origin(None, "candidate name for the site online chat (undocumented)"),
}
# (pattern, the messenger, source): a pattern maps only when it names the messenger itself.
PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = ()
CUSTOM_CHANNEL = re.compile(r"^amo\.ext\.\d+(_v\d+)?$")  # a Chats API channel's code (sources API example)


def channel_for_origin(origin: str | None) -> tuple[Channel, bool]:
    """The channel, and whether the origin was known."""
    raw = (origin or "").strip()[:200]
    key = raw.lower()
    known = ORIGINS.get(key)
    if known is not None:
        if known.messenger is None:
            return Channel(kind="online_chat", messenger=None, origin=raw), True
        return Channel(kind="messenger", messenger=known.messenger, origin=raw), True
    for pattern, messenger, _ in PATTERNS:
        if pattern.fullmatch(key):
            return Channel(kind="messenger", messenger=messenger, origin=raw), True
    if CUSTOM_CHANNEL.fullmatch(key):  # some company's own chat channel: which messenger is its business
        return Channel(kind="messenger", messenger=raw, origin=raw), True
    return Channel(kind="messenger", messenger=raw or None, origin=raw or None), False
