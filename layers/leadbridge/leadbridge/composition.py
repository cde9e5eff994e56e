"""Wiring: the objects each function needs, built once per process from its validated configuration."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Metrics

from leadbridge.aws.config import ApiConfig, JobsConfig, OAuthConfig, WorkerConfig
from leadbridge.aws.metrics import MetricCounter
from leadbridge.aws.queues import DeadLetters, InboxQueue, LeadsQueue
from leadbridge.aws.secret_values import secret_string, secret_string_fresh
from leadbridge.aws.store.account_claims import DynamoAccountClaims
from leadbridge.aws.store.backfills import DynamoBackfills
from leadbridge.aws.store.batch_reads import BatchReads
from leadbridge.aws.store.bot_sessions import DynamoBotSessions
from leadbridge.aws.store.chat_scopes import DynamoChatScopes
from leadbridge.aws.store.crm_lists import DynamoCrmLists
from leadbridge.aws.store.integrations import BatchStatus, CachedIntegrations, DynamoIntegrations
from leadbridge.aws.store.ledger import DynamoLedger
from leadbridge.aws.store.limits import DynamoLimitState
from leadbridge.aws.store.parked import DynamoParkedEvents
from leadbridge.aws.store.read_ahead import ReadAhead
from leadbridge.aws.store.site_chats import DynamoSiteChats
from leadbridge.aws.store.talk_messages import DynamoTalkMessages
from leadbridge.aws.store.tokens import DynamoTokens
from leadbridge.aws.store.work_index import WorkIndex
from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.chat_channel.actions import ChatChannel
from leadbridge.crms.amocrm.chat_channel.credentials import CredentialsSource
from leadbridge.crms.amocrm.enricher import AmoEnricher
from leadbridge.crms.amocrm.oauth import AmoOAuth
from leadbridge.crms.bitrix24.enricher import BitrixEnricher
from leadbridge.crms.bitrix24.oauth import BitrixOAuth
from leadbridge.crms.enrichment import Enricher
from leadbridge.crms.token_provider import Refresher, TokenProvider
from leadbridge.flows.api.service import IntegrationsService
from leadbridge.flows.connect.callback import OAuthCallback
from leadbridge.flows.connect.crm_lists import CrmPickers
from leadbridge.flows.connect.state import StateSigner
from leadbridge.flows.connect.subscription import remove_subscriptions, subscriptions_for
from leadbridge.flows.recovery.backfill.runner import BackfillRunner
from leadbridge.flows.recovery.sweep import Reconciler
from leadbridge.flows.scheduled.batch import JobsBatch
from leadbridge.flows.scheduled.planner import Expander
from leadbridge.flows.scheduled.queue import JobDeadLetters, JobsQueue
from leadbridge.flows.scheduled.work import ScheduledWork
from leadbridge.flows.worker.batch import WorkerBatch
from leadbridge.flows.worker.lead_worker import LeadWorker
from leadbridge.flows.worker.parking import Parking
from leadbridge.http.errors import AccessTokenRejected, CrmError, CrmUnavailable, RateLimited
from leadbridge.http.ratelimit import Budgets


class ReauthAlarm:
    """When a grant dies: the integration's status says so and the ReauthRequired metric raises the alarm."""

    def __init__(self, integrations: DynamoIntegrations, metrics: Metrics | None) -> None:
        self.integrations = integrations
        self.count = MetricCounter(metrics) if metrics is not None else None

    def grant_revoked(self, integration: Integration, reason: str) -> None:
        self.integrations.set_connection_state(integration.integration_id, "reauth_required", reason)
        if self.count is not None:  # the API keeps no metrics: the next scheduled or worker refusal raises it
            self.count("ReauthRequired")


def refreshers(redirect_uri: str) -> dict[str, Refresher]:
    return {"amocrm": AmoOAuth(redirect_uri), "bitrix24": BitrixOAuth()}


def token_provider(
    table: str, redirect_uri: str, metrics: Metrics | None, read_ahead: ReadAhead | None = None
) -> TokenProvider:
    integrations = DynamoIntegrations(table)
    stored = DynamoTokens(table, read_ahead)
    return TokenProvider(stored, refreshers(redirect_uri), observer=ReauthAlarm(integrations, metrics))


def parking(table: str, inbox_queue_url: str, read_ahead: ReadAhead | None = None) -> Parking:
    return Parking(DynamoParkedEvents(table), InboxQueue(inbox_queue_url), DynamoIntegrations(table, read_ahead))


def lead_worker(config: WorkerConfig, metrics: Metrics) -> WorkerBatch:
    read_ahead = ReadAhead()  # this environment's batch reads: one request instead of one per item
    integrations = DynamoIntegrations(config.integrations_table, read_ahead)
    tokens = token_provider(config.integrations_table, config.redirect_uri, metrics, read_ahead)
    budgets = Budgets(DynamoLimitState(config.limits_table))  # one per process: shared with every other one
    enrichers: dict[str, Enricher] = {
        "amocrm": AmoEnricher(
            tokens,
            budgets,
            DynamoTalkMessages(config.ledger_table, config.ledger_retention_days, read_ahead),
            DynamoBotSessions(config.ledger_table, config.ledger_retention_days, read_ahead),
            chat_channel(config, tokens, budgets, integrations),
        ),
        "bitrix24": BitrixEnricher(tokens, budgets, config.bitrix_activity_wait_seconds, moves=integrations),
    }
    status = BatchStatus(integrations)
    worker = LeadWorker(
        integrations=CachedIntegrations(integrations, ttl_seconds=5),
        status=status,
        ledger=DynamoLedger(config.ledger_table, config.ledger_retention_days),
        leads=LeadsQueue(config.leads_queue_url),
        enrichers=enrichers,
        count=MetricCounter(metrics),
        parking=parking(config.integrations_table, config.inbox_queue_url, read_ahead),
        remove_hooks=hooks_remover(tokens, budgets, DynamoTokens(config.integrations_table), config.redirect_uri),
        reads=BatchReads(read_ahead, config.integrations_table, config.ledger_table),
        batch_scoped=[tokens],
    )
    sources = [InboxQueue(url) for url in (config.inbox_queue_url, config.bot_continue_queue_url) if url]
    return WorkerBatch(worker, sources, DeadLetters(config.inbox_dlq_url), status)


def hooks_remover(
    tokens: TokenProvider, budgets: Budgets, stored: DynamoTokens, redirect_uri: str
) -> Callable[[Integration], None]:
    """A deactivated integration's webhook subscriptions out of its CRM, then its tokens deleted."""
    base_url = redirect_uri.removesuffix("/oauth2/callback")

    def remove(integration: Integration) -> None:
        crm = subscriptions_for(integration, tokens, budgets.for_integration(integration))
        try:
            remove_subscriptions(integration, crm, base_url)
        except (RateLimited, CrmUnavailable, AccessTokenRejected):
            raise  # tried again: the tokens are still needed
        except CrmError:
            pass  # refused for good (dead grant, no rights): nothing more to do with the tokens either
        stored.delete(integration.integration_id)

    return remove


def oauth_callback(config: OAuthConfig) -> OAuthCallback:
    integrations = DynamoIntegrations(config.integrations_table)
    return OAuthCallback(
        integrations=integrations,
        tokens=DynamoTokens(config.integrations_table),
        signer=StateSigner(lambda: secret_string(config.state_secret_arn)),
        amocrm=AmoOAuth(),
        bitrix24=BitrixOAuth(),
        parking=parking(config.integrations_table, config.inbox_queue_url),
        budgets=Budgets(DynamoLimitState(config.limits_table)),
        account_claims=DynamoAccountClaims(config.integrations_table),
        webhook_secret_grace_seconds=config.webhook_secret_grace_seconds,
    )


def integrations_service(config: ApiConfig) -> IntegrationsService:
    return IntegrationsService(
        integrations=DynamoIntegrations(config.integrations_table),
        tokens=DynamoTokens(config.integrations_table),
        signer=StateSigner(lambda: secret_string(config.state_secret_arn)),
        public_base_url=config.public_base_url,
        parking=parking(config.integrations_table, config.inbox_queue_url),
        parked=DynamoParkedEvents(config.integrations_table),
        backfills=DynamoBackfills(config.integrations_table),
        inbox=InboxQueue(config.inbox_queue_url),
        chat_scopes=DynamoChatScopes(config.integrations_table),
        account_claims=DynamoAccountClaims(config.integrations_table),
        ledger_retention_days=config.ledger_retention_days,
        webhook_secret_grace_seconds=config.webhook_secret_grace_seconds,
        pickers=(lambda origin: api_pickers(config, origin)) if config.limits_table else None,
    )


def api_pickers(config: ApiConfig, origin: str) -> CrmPickers:
    """The API's pickers for the origin the OAuth callback lives on (the API is its own: it cannot name itself)."""
    found = _api_pickers.get(origin)
    if found is None:
        redirect_uri = f"{origin.rstrip('/')}/oauth2/callback"
        found = _api_pickers[origin] = crm_pickers(
            config.integrations_table, config.limits_table, redirect_uri, None, config.crm_lists_cache_seconds
        )
    return found


_api_pickers: dict[str, CrmPickers] = {}


def crm_pickers(
    table: str, limits_table: str, redirect_uri: str, metrics: Metrics | None, cache_seconds: int
) -> CrmPickers:
    return CrmPickers(
        tokens=token_provider(table, redirect_uri, metrics),
        budgets=Budgets(DynamoLimitState(limits_table)),
        cache=DynamoCrmLists(table),
        cache_seconds=cache_seconds,
    )


def scheduled_jobs(config: JobsConfig, metrics: Metrics) -> JobsBatch:
    stores = config.stores
    table = stores.integrations_table
    integrations = DynamoIntegrations(table)
    tokens = DynamoTokens(table)
    provider = token_provider(table, stores.redirect_uri, metrics)
    budgets = Budgets(DynamoLimitState(stores.limits_table))  # one per process: shared with every other one
    ledger = DynamoLedger(stores.ledger_table, stores.ledger_retention_days)
    inbox = InboxQueue(stores.inbox_queue_url)
    waiting = parking(table, stores.inbox_queue_url)
    jobs = JobsQueue(config.jobs_queue_url)
    count = MetricCounter(metrics)
    work = ScheduledWork(
        expander=Expander(WorkIndex(table), tokens, jobs),
        integrations=integrations,
        reconciler=Reconciler(
            integrations=integrations,
            ledger=ledger,
            inbox=inbox,
            tokens=provider,
            parking=waiting,
            budgets=budgets,
            share=config.share,
            bitrix_idle_sweep_seconds=config.bitrix_idle_sweep_seconds,
        ),
        backfills=BackfillRunner(
            backfills=DynamoBackfills(table),
            integrations=integrations,
            ledger=ledger,
            inbox=inbox,
            tokens=provider,
            budgets=budgets,
            waiting=waiting,
            share=config.share,
        ),
        tokens=tokens,
        provider=provider,
        count=count,
        budgets=budgets,
        hook_base_url=stores.redirect_uri.removesuffix("/oauth2/callback"),
        webhook_secret_grace_seconds=config.webhook_secret_grace_seconds,
        pickers=CrmPickers(provider, budgets, DynamoCrmLists(table), config.crm_lists_cache_seconds),
    )
    return JobsBatch(work, jobs, JobDeadLetters(config.jobs_dlq_url), integrations, count)


def chat_channel(
    config: WorkerConfig, tokens: TokenProvider, budgets: Budgets, integrations: DynamoIntegrations
) -> ChatChannel:
    arn = config.chat_channel_secret_arn
    credentials = CredentialsSource(lambda: secret_string_fresh(arn)) if arn else None
    return ChatChannel(
        credentials=credentials,
        tokens=tokens,
        budgets=budgets,
        integrations=integrations,
        scopes=DynamoChatScopes(config.integrations_table),
        chats=DynamoSiteChats(config.ledger_table, config.ledger_retention_days),
    )
