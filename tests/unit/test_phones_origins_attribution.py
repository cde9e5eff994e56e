from __future__ import annotations

from dataclasses import replace

import pytest

from leadbridge.contract.attribution import attribute
from leadbridge.contract.integration import Integration, TrafficTarget
from leadbridge.contract.lead import Channel, Utm
from leadbridge.contract.phones import clean_emails, phones_e164, to_e164
from leadbridge.crms.amocrm.channels import channel_for_origin


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8 (912) 345-67-89", "+79123456789"),
        ("+7 912 345 67 89", "+79123456789"),
        ("79123456789", "+79123456789"),
        ("+1 415 555 2671", "+14155552671"),
        ("12", None),
        ("", None),
        ("phone", None),
    ],
)
def test_e164(raw: str, expected: str | None) -> None:
    assert to_e164(raw) == expected


def test_duplicates_and_junk_dropped() -> None:
    assert phones_e164(["89123456789", "+7 912 345-67-89", "nope"]) == ["+79123456789"]
    assert clean_emails(["A@B.ru", "a@b.ru", "not-an-email"]) == ["a@b.ru"]


@pytest.mark.parametrize(
    ("origin", "kind", "messenger", "known"),
    [
        ("telegram", "messenger", "telegram", True),
        ("waba", "messenger", "whatsapp", True),
        ("com.amocrm.amocrmwa", "messenger", "whatsapp", True),
        ("instagram_business", "messenger", "instagram", True),
        ("com.wazzup24.wz", "messenger", "whatsapp", True),
        ("com.wazzup24.insta", "messenger", "instagram", True),
        ("com.wazzup24.tg", "messenger", "com.wazzup24.tg", False),  # a vendor's prefix alone says nothing
        ("brand-new-channel", "messenger", "brand-new-channel", False),
    ],
)
def test_origins(origin: str, kind: str, messenger: str, known: bool) -> None:
    channel, was_known = channel_for_origin(origin)
    assert (channel.kind, channel.messenger, channel.origin, was_known) == (kind, messenger, origin, known)


BASE = Integration(
    integration_id="i",
    crm="amocrm",
    crm_domain="x.amocrm.ru",
    traffic_type="campaign",
    default_target=TrafficTarget(campaign_id=1, source_id=5, site_id=6),
    messenger_targets={"telegram": TrafficTarget(campaign_id=2, source_id=7, site_id=8)},
)
TELEGRAM = Channel(kind="messenger", messenger="telegram", origin="telegram")
VIBER = Channel(kind="messenger", messenger="viber", origin="viber")


def test_session_wins() -> None:
    result = attribute(BASE, TELEGRAM, "sess", Utm(source="y"))
    assert (result.kind, result.session_id, result.campaign_id, result.utm.source) == ("session", "sess", None, "y")


def test_messenger_mapping_then_default_by_traffic_type() -> None:
    assert attribute(BASE, TELEGRAM, None, Utm()).campaign_id == 2
    assert attribute(BASE, VIBER, None, Utm()).kind == "integration_default"
    source = attribute(replace(BASE, traffic_type="source"), TELEGRAM, None, Utm())
    assert (source.kind, source.campaign_id, source.source_id, source.site_id) == ("messenger_default", None, 7, 8)
