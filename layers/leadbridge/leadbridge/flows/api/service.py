"""The integrations API's operations, as plain Python over the store (the ASGI app only routes to these)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from leadbridge.aws.queues import InboxMessage, InboxQueue, received_stamp
from leadbridge.aws.store.account_claims import DynamoAccountClaims
from leadbridge.aws.store.backfills import DynamoBackfills
from leadbridge.aws.store.chat_scopes import DynamoChatScopes
from leadbridge.aws.store.integrations import DynamoIntegrations
from leadbridge.aws.store.parked import DynamoParkedEvents
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.contract.backfill_job import BackfillJob
from leadbridge.contract.integration import ConnectionState, Integration, SessionField, TrafficTarget
from leadbridge.contract.webhook_secret import hash_secret, new_secret
from leadbridge.crms.amocrm.chat_channel.messages import (
    ChannelConnect,
    DeliveryReport,
    MessagesAccepted,
    VisitorMessages,
)
from leadbridge.crms.crm_lists import ListKind
from leadbridge.flows.api.settings import (
    AmoCrmSettings,
    AuthorizeUrl,
    BackfillProgress,
    BackfillRequest,
    Bitrix24Settings,
    ChatChannelView,
    DriftCheck,
    IntegrationsPage,
    IntegrationStatus,
    IntegrationView,
    LastRefusal,
    ResumeResult,
    SessionFieldSetting,
    SettingsCheckView,
    SetupStepView,
    Target,
    WebhookSecretIssued,
)
from leadbridge.flows.api.setup import setup_checklist
from leadbridge.flows.api.site_script import site_script
from leadbridge.flows.connect.authorize import authorize_url
from leadbridge.flows.connect.crm_lists import SESSION_FIELD_PROBLEMS, CrmPickers, NotReadable, SettingsCheck
from leadbridge.flows.connect.state import StateSigner
from leadbridge.flows.recovery.backfill.begin import begin_backfill
from leadbridge.flows.worker.lead_worker import HOOKS_REMOVAL
from leadbridge.flows.worker.parking import Parking
from leadbridge.http.public_host import require_public

RESUME_LEASE_SECONDS = 60  # longer than the API's 15 s timeout: a resume cut off there does not overlap the next


class NotFoundError(LookupError):
    pass


class IntegrationsService:
    """``public_base_url``: the configured origin for webhook URLs; empty means the origin the request came to."""

    def __init__(
        self,
        integrations: DynamoIntegrations,
        tokens: DynamoTokens,
        signer: StateSigner,
        public_base_url: str,
        parking: Parking,
        parked: DynamoParkedEvents,
        backfills: DynamoBackfills,
        inbox: InboxQueue,
        chat_scopes: DynamoChatScopes,
        account_claims: DynamoAccountClaims,
        ledger_retention_days: int = 90,
        webhook_secret_grace_seconds: int = 86_400,
        pickers: Callable[[str], CrmPickers] | None = None,
    ) -> None:
        self.pickers_at = pickers
        self.chat_scopes = chat_scopes
        self.account_claims = account_claims
        self.ledger_retention_days = ledger_retention_days
        self.webhook_secret_grace_seconds = webhook_secret_grace_seconds
        self.backfills = backfills
        self.inbox = inbox
        self.integrations = integrations
        self.tokens = tokens
        self.signer = signer
        self.public_base_url = public_base_url.rstrip("/")
        self.parking = parking
        self.parked = parked

    def put(
        self, integration_id: str, settings: AmoCrmSettings | Bitrix24Settings, request_base_url: str = ""
    ) -> tuple[IntegrationView, bool]:
        """Create or update; returns the view and whether it was created."""
        if isinstance(settings, Bitrix24Settings):
            require_public(settings.crm_domain)  # the worker sends the portal's token there: NonPublicHost, a 422
        existing = self.integrations.get(integration_id)
        target = _target_map
        integration = Integration(
            integration_id=integration_id,
            crm=settings.crm,
            crm_domain=settings.crm_domain,
            active=settings.active,
            name=settings.name,
            client_id=settings.client_id,
            client_secret=settings.client_secret or (existing.client_secret if existing else None),
            webhook_secret_hash=existing.webhook_secret_hash if existing else None,
            previous_webhook_secret_hash=existing.previous_webhook_secret_hash if existing else None,
            previous_secret_until=existing.previous_secret_until if existing else None,
            application_token_hash=existing.application_token_hash if existing else None,
            account_id=existing.account_id if existing and existing.crm_domain == settings.crm_domain else None,
            traffic_type=settings.traffic_type,
            default_target=target(settings.default_target),
            messenger_targets={k: target(v) for k, v in settings.messenger_targets.items()},
            employee_id=settings.employee_id,
            session_getter=settings.session_getter,
        )
        if existing is not None and existing.crm != integration.crm:
            raise ValueError("an integration's CRM cannot change; create a new integration")
        if existing is not None and existing.account_id and integration.account_id is None:
            self._release_account(existing)  # another account now: the old one's claims are free
        if isinstance(settings, AmoCrmSettings):
            session = settings.session_field
            integration = replace(
                integration,
                session_field=SessionField(session.field_id, session.entity) if session else None,
                amo_note_enabled=settings.note_enabled,
                amo_trigger_leads=settings.trigger_leads,
            )
        else:
            token_hash = (
                hash_secret(settings.application_token)
                if settings.application_token
                else integration.application_token_hash
            )
            integration = replace(integration, application_token_hash=token_hash, bitrix_enterprise=settings.enterprise)
        check = self._check_with_crm(integration, self._pickers(request_base_url))
        self.integrations.put(integration)
        self.integrations.record_settings_check(integration_id, check.record())
        return view(integration), existing is None

    def _pickers(self, request_base_url: str) -> CrmPickers | None:
        """Reading a CRM may refresh its token, which names the OAuth callback: on the public origin."""
        origin = self.public_base_url or request_base_url.rstrip("/")
        return self.pickers_at(origin) if self.pickers_at is not None and origin else None

    def _check_with_crm(self, integration: Integration, pickers: CrmPickers | None) -> SettingsCheck:
        """Refuse a session field the CRM does not have (``SettingsRefused``, a 422); say which mapping keys no
        channel produces. An integration not connected yet, or a CRM that cannot be asked, is checked later."""
        now = int(time.time())
        if pickers is None or not integration.account_id:
            return SettingsCheck("pending", now, [], "not_connected: checked once the integration is connected")
        check = pickers.check(integration)
        check.refuse_session_field()
        return check

    def crm_list(
        self, integration_id: str, kind: ListKind, request_base_url: str = ""
    ) -> tuple[Integration, list[dict[str, Any]]]:
        """A picker's list from the integration's CRM (cached): ``NotReadable`` is a 409, ``CrmError`` a 502."""
        integration = self._require(integration_id)
        pickers = self._pickers(request_base_url)
        if pickers is None:
            raise NotReadable("unavailable", "this deployment reads no CRM lists")
        return integration, pickers.read(integration, kind)

    def get(self, integration_id: str) -> IntegrationView:
        return view(self._require(integration_id))

    def list(self, limit: int, cursor: str | None) -> IntegrationsPage:
        """A page of integrations in the table's order; ``next_cursor`` goes on from it (None: that was the last)."""
        found, following = self.integrations.list_page(limit, decode_cursor(cursor) if cursor else None)
        return IntegrationsPage(
            items=[view(i) for i in found], next_cursor=encode_cursor(following) if following else None
        )

    def deactivate(self, integration_id: str) -> None:
        integration = self._require(integration_id)
        self.integrations.put(replace(integration, active=False))
        subscribed = self.integrations.status(integration_id).get("hook_subscription")
        if isinstance(subscribed, dict) and subscribed.get("state") in {"subscribed", "present", "restored"}:
            # Its own webhook leaves the CRM first: the worker does it with the tokens, then deletes them.
            self.inbox.send_many([removal_message(integration)])
        else:
            self.tokens.delete(integration_id)
        self.integrations.set_connection_state(integration_id, "disconnected", "deactivated through the API")
        self._release_account(integration)

    def _release_account(self, integration: Integration) -> None:
        """The integration no longer speaks for its CRM account: another one may connect it and its chat channel.
        (The channel itself stays connected in amojo until the account's next integration connects it again.)"""
        if integration.crm != "amocrm" or not integration.account_id:
            return
        self.account_claims.release("amocrm", integration.account_id, integration.integration_id)
        self.chat_scopes.release_account(integration.account_id, integration.integration_id)
        if self.integrations.status(integration.integration_id).get("chat_channel_state") in {
            "connected",
            "connecting",
        }:
            self.integrations.set_chat_channel(integration.integration_id, "disconnected")

    def issue_webhook_secret(self, integration_id: str, request_base_url: str) -> WebhookSecretIssued:
        integration = self._require(integration_id)
        secret = new_secret()
        # The URL it replaces keeps working for the grace period: the admin pastes the new one without a gap.
        rotated = replace(
            integration,
            webhook_secret_hash=hash_secret(secret),
            previous_webhook_secret_hash=integration.webhook_secret_hash,
            previous_secret_until=int(time.time()) + self.webhook_secret_grace_seconds
            if integration.webhook_secret_hash
            else None,
        )
        self.integrations.put(rotated)
        trailing = "/" if integration.crm == "amocrm" else ""  # amoCRM may refuse a hook URL without it
        base = self.public_base_url or request_base_url.rstrip("/")
        return WebhookSecretIssued(webhook_url=f"{base}/hooks/{integration.crm}/{integration_id}/{secret}{trailing}")

    def resume(self, integration_id: str) -> ResumeResult:
        """Send the integration's parked events back to the inbox (after an account was unblocked, or the user's
        rights granted, by hand): the admin says it is fixed, so the integration is connected again first (if it is
        not, the next event finds out and parks again)."""
        integration = self._require(integration_id)
        if not integration.account_id:
            raise ValueError("the integration was never connected: connect it through OAuth first (authorize-url)")
        stored = self.tokens.read(integration_id)
        if stored is None or stored.state != "active":  # nothing parked can get through: resuming would only churn
            return ResumeResult(resumed=0, waiting_for="reauth_required")
        if not self.integrations.take_resume_lease(integration_id, int(time.time()), RESUME_LEASE_SECONDS):
            raise ValueError("a resume of this integration is running")
        try:
            state = self.integrations.status(integration_id).get("connection_state")
            if state in {"blocked", "insufficient_rights"}:
                self.integrations.set_connection_state(integration_id, "connected")
            return ResumeResult(resumed=self.parking.resume(integration_id))
        finally:
            self.integrations.release_resume_lease(integration_id)

    def start_backfill(self, integration_id: str, request: BackfillRequest) -> BackfillProgress:
        """Import the period's conversations the ledger has not seen (the backfill function runs it)."""
        integration = self._require(integration_id)
        if not integration.account_id:
            raise ValueError("the integration was never connected: connect it through OAuth first (authorize-url)")
        period = int(request.period_from.timestamp()), int(request.period_to.timestamp())
        job = begin_backfill(
            self.integrations,
            self.backfills,
            integration_id,
            *period,
            now=int(time.time()),
            ledger_memory_days=self.ledger_retention_days,
        )
        if job is None:
            raise NotFoundError(integration_id)
        return progress_view(job)

    def backfill(self, integration_id: str) -> BackfillProgress:
        self._require(integration_id)
        job = self.backfills.get(integration_id)
        if job is None:
            raise NotFoundError(integration_id)
        return progress_view(job)

    def cancel_backfill(self, integration_id: str) -> BackfillProgress:
        self._require(integration_id)
        job = self.backfills.get(integration_id)
        if job is None:
            raise NotFoundError(integration_id)
        if job.state == "running" and self.backfills.finish(job, "cancelled", int(time.time())):
            job = self.backfills.get(integration_id) or job
        return progress_view(job)

    # ------------------------------------------------------------------ the site chat channel (amoCRM Chats API)
    def connect_chat_channel(self, integration_id: str, request: ChannelConnect) -> ChatChannelView:
        """Connect the stack's chat channel to the account (the worker does it: it holds the OAuth token)."""
        integration = self._chat_capable(integration_id)
        assert integration.account_id is not None  # _chat_capable: connected through OAuth
        holder = self.chat_scopes.claim_account(integration.account_id, integration_id)
        if holder is not None:
            raise ValueError(
                f"amoCRM account {integration.account_id} has the chat channel through integration {holder}: "
                "one integration per account (disconnect it there first)"
            )
        self.integrations.set_chat_channel(integration_id, "connecting")
        self._enqueue(integration, "channel.connect", "channel_connect", "channel", {"title": request.title})
        return self._chat_view(integration_id)

    def disconnect_chat_channel(self, integration_id: str) -> ChatChannelView:
        integration = self._chat_capable(integration_id)
        self.integrations.set_chat_channel(integration_id, "disconnecting")
        self._enqueue(integration, "channel.disconnect", "channel_disconnect", "channel", {})
        return self._chat_view(integration_id)

    def accept_visitor_messages(self, integration_id: str, request: VisitorMessages) -> MessagesAccepted:
        """Each message goes to amoCRM; each one also announces its conversation, whose first becomes the lead."""
        integration = self._chat_connected(integration_id)
        messages: list[InboxMessage] = []
        for visitor in request.messages:
            fields = visitor.model_dump(mode="json", exclude_none=True)
            fields.setdefault("sent_at", datetime.now(UTC).isoformat())
            messages.append(self._message(integration, "chat.message", "site_chat_message", visitor.message_id, fields))
            messages.append(self._message(integration, "chat.started", "site_chat", visitor.conversation_id, fields))
        self.inbox.send_many(messages)
        return MessagesAccepted(accepted=len(request.messages))

    def report_delivery(self, integration_id: str, report: DeliveryReport) -> MessagesAccepted:
        integration = self._chat_connected(integration_id)
        fields = report.model_dump(mode="json", exclude_none=True)
        self._enqueue(integration, "chat.delivery", "channel_delivery", report.message_id, fields)
        return MessagesAccepted(accepted=1)

    def _chat_capable(self, integration_id: str) -> Integration:
        integration = self._require(integration_id)
        if integration.crm != "amocrm":
            raise ValueError("the chat channel is amoCRM's (Chats API)")
        if not integration.active or not integration.account_id:
            raise ValueError("connect the integration through OAuth first")
        return integration

    def _chat_connected(self, integration_id: str) -> Integration:
        integration = self._chat_capable(integration_id)
        if self.integrations.status(integration_id).get("chat_channel_state") != "connected":
            raise ValueError("connect the chat channel first (POST /integrations/{id}/chat-channel)")
        return integration

    def _enqueue(
        self, integration: Integration, event: str, entity_type: str, entity_id: str, payload: dict[str, Any]
    ) -> None:
        stamped = {**payload, "ts": f"{time.time():.6f}"}  # a deliberate repeat is a new request, not a duplicate
        self.inbox.send_many([self._message(integration, event, entity_type, entity_id, stamped)])

    @staticmethod
    def _message(
        integration: Integration, event: str, entity_type: str, entity_id: str, payload: dict[str, Any]
    ) -> InboxMessage:
        return InboxMessage(
            integration_id=integration.integration_id,
            crm="amocrm",
            account=str(integration.account_id),
            event=event,
            entity_type=entity_type,
            entity_id=entity_id,
            received_at=received_stamp(),
            payload=payload,
        )

    def _chat_view(self, integration_id: str) -> ChatChannelView:
        view = chat_channel_view(self.integrations.status(integration_id))
        return view or ChatChannelView(state="not_connected", scope_id=None, changed_at=None, error=None)

    def authorize_url(self, integration_id: str) -> AuthorizeUrl:
        integration = self._require(integration_id)
        if not integration.client_id:
            raise ValueError("the integration has no OAuth client id")
        return AuthorizeUrl(url=authorize_url(integration, self.signer))

    def status(self, integration_id: str) -> IntegrationStatus:
        integration = self._require(integration_id)
        record: dict[str, Any] = self.integrations.status(integration_id)
        stored = self.tokens.read(integration_id)
        usable = stored is not None and stored.state == "active"
        saved_check = record.get("settings_check")
        checked: dict[str, Any] = saved_check if isinstance(saved_check, dict) and "state" in saved_check else {}
        connection: ConnectionState = record.get("connection_state") or ("connected" if usable else "not_connected")
        if connection == "connected" and not usable:  # the status lags what the token item says
            connection = "reauth_required"
        return IntegrationStatus(
            integration_id=integration_id,
            active=integration.active,
            connection=connection,
            token_expires_at=stored.tokens.expires_at if stored and stored.state == "active" else None,
            last_event_at=record.get("last_event_at"),
            last_lead_at=record.get("last_lead_at"),
            last_error=record.get("last_error"),
            last_error_at=record.get("last_error_at"),
            accepted=int(record.get("count_accepted", 0)),
            emitted=int(record.get("count_emitted", 0)),
            skipped=int(record.get("count_skipped", 0)),
            failed=int(record.get("count_failed", 0)),
            parked=self.parked.count(integration_id),
            unknown_channels=sorted(record.get("unknown_channels") or [])[:50],
            notices=sorted({*(record.get("notices") or []), *_check_notice(checked)}),
            settings_check=SettingsCheckView(
                state=checked["state"], checked_at=int(checked.get("checked_at") or 0), detail=str(checked["detail"])
            )
            if checked
            else None,
            unknown_mapping_keys=[str(key) for key in checked.get("unknown_mapping_keys") or []][:50],
            dropped={k.removeprefix("dropped_"): int(v) for k, v in record.items() if k.startswith("dropped_")},
            backfill=progress_view(job) if (job := self.backfills.get(integration_id)) else None,
            drift=DriftCheck(**record["drift_last"]) if isinstance(record.get("drift_last"), dict) else None,
            chat_channel=chat_channel_view(record) if integration.crm == "amocrm" else None,
            setup=[SetupStepView(**step._asdict()) for step in setup_checklist(integration, record, connection)],
            last_webhook_at=int(record["last_webhook_at"]) if record.get("last_webhook_at") else None,
            last_refusal=(
                LastRefusal(reason=str(record["last_refusal"]), at=int(record.get("last_refusal_at") or 0))
                if record.get("last_refusal")
                else None
            ),
            refused={k.removeprefix("refused_"): int(v) for k, v in record.items() if k.startswith("refused_")},
            ignored={k.removeprefix("ignored_"): int(v) for k, v in record.items() if k.startswith("ignored_")},
            portal_moved=(
                {str(k): str(v) for k, v in record["portal_moved"].items()}
                if isinstance(record.get("portal_moved"), dict)
                else None
            ),
        )

    def site_script(self, integration_id: str) -> str:
        return site_script(self._require(integration_id))

    def _require(self, integration_id: str) -> Integration:
        integration = self.integrations.get(integration_id)
        if integration is None:
            raise NotFoundError(integration_id)
        return integration


def _check_notice(checked: dict[str, Any]) -> list[str]:
    """A session field gone from the CRM is the loss of every lead's session: it is a notice too."""
    return [str(checked["state"])] if checked.get("state") in SESSION_FIELD_PROBLEMS else []


class InvalidCursor(ValueError):
    """A ``cursor`` this API did not hand out (a 422)."""


def encode_cursor(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps([key["pk"], key["sk"]]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    try:
        pk, sk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("cursor: not one this API handed out") from exc
    # The key the Scan stopped at: any item of the table (a status, a token, a parked event), never read itself:
    # the next Scan starts after it and its filter takes settings only.
    if not (isinstance(pk, str) and isinstance(sk, str) and 0 < len(pk) <= 300 and 0 < len(sk) <= 300):
        raise InvalidCursor("cursor: not one this API handed out")
    return {"pk": pk, "sk": sk}


def removal_message(integration: Integration) -> InboxMessage:
    """The worker's cue to remove a deactivated integration's webhook subscriptions from its CRM."""
    return InboxMessage(
        integration_id=integration.integration_id,
        crm=integration.crm,
        account=str(integration.account_id or ""),
        event="hooks.unsubscribe",
        entity_type=HOOKS_REMOVAL,
        entity_id=f"hooks-{int(time.time())}",
        received_at=received_stamp(None),
        payload={},
    )


def _target_map(target: Target) -> TrafficTarget:
    return TrafficTarget(campaign_id=target.campaign_id, source_id=target.source_id, site_id=target.site_id)


def _target_view(target: TrafficTarget) -> Target:
    return Target(campaign_id=target.campaign_id, source_id=target.source_id, site_id=target.site_id)


def view(integration: Integration) -> IntegrationView:
    amo = integration.crm == "amocrm"
    session = integration.session_field
    return IntegrationView(
        integration_id=integration.integration_id,
        crm=integration.crm,
        active=integration.active,
        name=integration.name,
        crm_domain=integration.crm_domain,
        account_id=integration.account_id,
        client_id=integration.client_id,
        has_client_secret=bool(integration.client_secret),
        has_webhook_secret=bool(integration.webhook_secret_hash),
        has_application_token=None if amo else bool(integration.application_token_hash),
        traffic_type=integration.traffic_type,
        default_target=_target_view(integration.default_target),
        messenger_targets={k: _target_view(v) for k, v in integration.messenger_targets.items()},
        employee_id=integration.employee_id,
        session_field=SessionFieldSetting(field_id=session.field_id, entity=session.entity)
        if amo and session
        else None,
        note_enabled=integration.amo_note_enabled if amo else None,
        trigger_leads=integration.amo_trigger_leads if amo else None,
        enterprise=None if amo else integration.bitrix_enterprise,
        session_getter=integration.session_getter,
    )


def progress_view(job: BackfillJob) -> BackfillProgress:
    return BackfillProgress(
        backfill_id=job.backfill_id,
        state=job.state,
        period_from=job.period_from,
        period_to=job.period_to,
        total=job.total,
        total_final=job.listing_done,
        done=job.done,
        already_known=job.already_known,
        errors=job.errors,
        remaining=job.remaining,
        started_at=job.started_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
        last_error=job.last_error,
    )


def chat_channel_view(record: dict[str, Any]) -> ChatChannelView | None:
    state = record.get("chat_channel_state")
    if not isinstance(state, str):
        return None
    return ChatChannelView(
        state=state,  # type: ignore[arg-type]
        scope_id=record.get("chat_scope_id"),
        changed_at=record.get("chat_channel_changed_at"),
        error=record.get("chat_channel_error") or None,
    )
