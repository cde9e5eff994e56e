"""amoCRM talk ``origin`` -> the lead's channel. Unknown origins pass through raw (and are counted), never dropped.

Sources: reference/amocrm.md §5.1 (Kommo frontend constants, captures, third-party handlers).
"""

from __future__ import annotations

from leadbridge.lead import Channel

MESSENGER_BY_ORIGIN: dict[str, str] = {
    "telegram": "telegram",
    "waba": "whatsapp",
    "com.amocrm.amocrmwa": "whatsapp",
    "amochats.whatsapp": "whatsapp",
    "whatsapp": "whatsapp",
    "instagram_business": "instagram",
    "instagram": "instagram",
    "facebook": "facebook",
    "vk": "vk",
    "vkontakte": "vk",
    "viber": "viber",
    "avito": "avito",
    "tiktok-kommo": "tiktok",
    "com.kommo.tiktokint": "tiktok",
    "tiktok_kommo": "tiktok",
    "ok": "ok",
    "skype": "skype",
    "wechat": "wechat",
    "apple_business_chat": "imessage",
}
# The site's own online chat (the multi-widget's chat): its origin value is not documented (reference/amocrm.md
# §5.1, "Not found"). These candidates are taken as the online chat; any other unknown value passes through raw.
ONLINE_CHAT_ORIGINS = frozenset({"amo_online_chat", "onlinechat", "online_chat", "amocrm_widget", "site_chat"})
PREFIX_MESSENGERS = (("com.wazzup24", "whatsapp"), ("amo.ext.", None))


def channel_for_origin(origin: str | None) -> tuple[Channel, bool]:
    """The channel, and whether the origin was known."""
    raw = (origin or "").strip()
    key = raw.lower()
    if key in ONLINE_CHAT_ORIGINS:
        return Channel(kind="online_chat", messenger=None, origin=raw), True
    if key in MESSENGER_BY_ORIGIN:
        return Channel(kind="messenger", messenger=MESSENGER_BY_ORIGIN[key], origin=raw), True
    for prefix, messenger in PREFIX_MESSENGERS:
        if key.startswith(prefix):
            return Channel(kind="messenger", messenger=messenger or raw, origin=raw), True
    return Channel(kind="messenger", messenger=raw or None, origin=raw or None), False
