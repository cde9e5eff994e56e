"""Channel maps: known values mapped, vendor prefixes never enough, unknown passed raw; docs/channels.md matches."""

from __future__ import annotations

import pytest

from leadbridge.crms.amocrm.channels import ORIGINS, channel_for_origin
from leadbridge.crms.bitrix24.channels import CONNECTORS, PATTERNS, channel_for_connector
from tests.conftest import REPO

DOC = (REPO / "docs" / "channels.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("connector", "messenger", "known"),
    [
        ("telegrambot", "telegram", True),
        ("livechat", None, True),
        ("wz_whatsapp_4f2a9c", "whatsapp", True),
        ("wz_instagram_77aa", "instagram", True),
        ("ank_chats_app24_whatsapp", "whatsapp", True),
        ("ank_chats_app24_telegram", "telegram", True),
        ("wz_something_else", "wz_something_else", False),  # a vendor's prefix alone says nothing
        ("ank_chats_app24", "ank_chats_app24", False),
        ("brand_new", "brand_new", False),
    ],
)
def test_bitrix24_connectors(connector: str, messenger: str | None, known: bool) -> None:
    channel, was_known = channel_for_connector(connector)
    assert (channel.messenger, channel.origin, was_known) == (messenger, connector, known)


def test_every_mapping_is_in_the_docs_table() -> None:
    for key, origin in ORIGINS.items():
        assert f"| `{key}` | {origin.messenger or 'online chat'} | {origin.source} |" in DOC, key
    for key, connector in CONNECTORS.items():
        assert f"| `{key}` | {connector.messenger or 'online chat'} | {connector.source} |" in DOC, key
    for pattern, source in PATTERNS:
        assert f"| `{pattern.pattern}` |" in DOC
        assert source in DOC


def test_unknown_origins_are_raw_and_flagged() -> None:
    channel, known = channel_for_origin("com.newvendor.whatever")
    assert (channel.kind, channel.messenger, channel.origin, known) == (
        "messenger",
        "com.newvendor.whatever",
        "com.newvendor.whatever",
        False,
    )
