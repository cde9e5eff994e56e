"""Which campaign or source a lead belongs to, by the products' rules (seeds 000 and 001):
1. the analytics session, when the chat carried one (the cabinet resolves campaign and source from it);
2. otherwise, for a messenger, the integration's messenger -> campaign/source mapping;
3. otherwise the integration's default campaign, or default source and site (the traffic type decides).
"""

from __future__ import annotations

from leadbridge.contract.integration import Integration, TrafficTarget
from leadbridge.contract.lead import Attribution, Channel, Utm


def attribute(integration: Integration, channel: Channel, session_id: str | None, utm: Utm) -> Attribution:
    if session_id:
        return Attribution(
            kind="session", session_id=session_id, campaign_id=None, source_id=None, site_id=None, utm=utm
        )
    if channel.kind == "messenger" and channel.messenger:
        mapped = integration.messenger_targets.get(channel.messenger)
        if mapped is not None:
            return _target("messenger_default", integration, mapped, utm)
    return _target("integration_default", integration, integration.default_target, utm)


def _target(kind: str, integration: Integration, target: TrafficTarget, utm: Utm) -> Attribution:
    if integration.traffic_type == "campaign":
        return Attribution(
            kind=kind,  # type: ignore[arg-type]
            session_id=None,
            campaign_id=target.campaign_id,
            source_id=None,
            site_id=None,
            utm=utm,
        )
    return Attribution(
        kind=kind,  # type: ignore[arg-type]
        session_id=None,
        campaign_id=None,
        source_id=target.source_id,
        site_id=target.site_id,
        utm=utm,
    )


def describe(attribution: Attribution) -> str:
    """One line for a CRM note: how the lead was attributed, without personal data."""
    if attribution.kind == "session":
        return f"по сессии {attribution.session_id}"
    where = (
        f"РК {attribution.campaign_id}"
        if attribution.campaign_id is not None
        else f"источник {attribution.source_id}, сайт {attribution.site_id}"
        if attribution.source_id is not None
        else "без РК и источника"
    )
    label = "по мессенджеру" if attribution.kind == "messenger_default" else "по умолчанию интеграции"
    return f"{label}: {where}"
