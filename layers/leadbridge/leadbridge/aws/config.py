"""Environment configuration of each function, read and validated once at cold start.

A function that is deployed without a variable it needs fails at import with a message that names the
variable, instead of failing later on the first event. NamedTuples, not dataclasses: every function imports this
module at cold start, and a NamedTuple costs a fifth of a frozen dataclass to define.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple


class ConfigError(RuntimeError):
    pass


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


def _optional(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from exc
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"environment variable {name} must be in (0, 1], got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc


class HookConfig(NamedTuple):
    integrations_table: str
    inbox_queue_url: str
    integration_cache_seconds: int
    limits_table: str = ""  # per-integration admission (hooks/admission.py); none without it
    tenant_webhooks_per_second: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HookConfig:
        return cls(
            integrations_table=_require(env, "INTEGRATIONS_TABLE"),
            inbox_queue_url=_require(env, "INBOX_QUEUE_URL"),
            integration_cache_seconds=_int(env, "INTEGRATION_CACHE_SECONDS", 30),
            limits_table=_optional(env, "LIMITS_TABLE"),
            tenant_webhooks_per_second=_int(env, "TENANT_WEBHOOKS_PER_SECOND", 30),
        )


class AmoHookConfig(NamedTuple):
    """The amoCRM hook also keeps the sessions Salesbot hands over (in the ledger table, for its retention)."""

    integrations_table: str
    inbox_queue_url: str
    integration_cache_seconds: int
    ledger_table: str
    ledger_retention_days: int
    bot_continue_queue_url: str  # Salesbot continues: the inbox without its delay
    limits_table: str = ""
    tenant_webhooks_per_second: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AmoHookConfig:
        hook = HookConfig.from_env(env)
        return cls(
            integrations_table=hook.integrations_table,
            inbox_queue_url=hook.inbox_queue_url,
            integration_cache_seconds=hook.integration_cache_seconds,
            limits_table=hook.limits_table,
            tenant_webhooks_per_second=hook.tenant_webhooks_per_second,
            ledger_table=_require(env, "LEDGER_TABLE"),
            ledger_retention_days=_int(env, "LEDGER_RETENTION_DAYS", 90),
            bot_continue_queue_url=_require(env, "BOT_CONTINUE_QUEUE_URL"),
        )


class WorkerConfig(NamedTuple):
    integrations_table: str
    ledger_table: str
    limits_table: str
    inbox_queue_url: str
    inbox_dlq_url: str
    leads_queue_url: str
    redirect_uri: str
    ledger_retention_days: int
    bitrix_activity_wait_seconds: int
    chat_channel_secret_arn: str = ""  # empty: no site chat channel on this stack
    bot_continue_queue_url: str = ""  # Salesbot continues arrive here too (the inbox without its delay)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerConfig:
        return cls(
            integrations_table=_require(env, "INTEGRATIONS_TABLE"),
            ledger_table=_require(env, "LEDGER_TABLE"),
            limits_table=_require(env, "LIMITS_TABLE"),
            inbox_queue_url=_require(env, "INBOX_QUEUE_URL"),
            inbox_dlq_url=_require(env, "INBOX_DLQ_URL"),
            leads_queue_url=_require(env, "LEADS_QUEUE_URL"),
            redirect_uri=_require(env, "OAUTH_REDIRECT_URI"),
            ledger_retention_days=_int(env, "LEDGER_RETENTION_DAYS", 90),
            bitrix_activity_wait_seconds=_int(env, "BITRIX_ACTIVITY_WAIT_SECONDS", 600),
            chat_channel_secret_arn=_optional(env, "CHAT_CHANNEL_SECRET_ARN"),
            bot_continue_queue_url=_optional(env, "BOT_CONTINUE_QUEUE_URL"),
        )


class OAuthConfig(NamedTuple):
    """Behind the API: its public URL is ``PUBLIC_BASE_URL`` when set, else the request's own (see ``apigw``)."""

    integrations_table: str
    state_secret_arn: str
    inbox_queue_url: str
    limits_table: str
    public_base_url: str
    webhook_secret_grace_seconds: int = 86_400

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OAuthConfig:
        return cls(
            integrations_table=_require(env, "INTEGRATIONS_TABLE"),
            state_secret_arn=_require(env, "STATE_SECRET_ARN"),
            inbox_queue_url=_require(env, "INBOX_QUEUE_URL"),
            limits_table=_require(env, "LIMITS_TABLE"),
            public_base_url=_optional(env, "PUBLIC_BASE_URL").rstrip("/"),
            webhook_secret_grace_seconds=_int(env, "WEBHOOK_SECRET_GRACE_SECONDS", 86_400),
        )


class ApiConfig(NamedTuple):
    """Behind the API: its public URL is ``PUBLIC_BASE_URL`` when set, else the request's own."""

    integrations_table: str
    state_secret_arn: str
    inbox_queue_url: str
    public_base_url: str
    ledger_retention_days: int = 90
    webhook_secret_grace_seconds: int = 86_400
    limits_table: str = ""  # the pickers read the CRM under the shared budget (none without it)
    crm_lists_cache_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiConfig:
        return cls(
            integrations_table=_require(env, "INTEGRATIONS_TABLE"),
            state_secret_arn=_require(env, "STATE_SECRET_ARN"),
            inbox_queue_url=_require(env, "INBOX_QUEUE_URL"),
            public_base_url=_optional(env, "PUBLIC_BASE_URL").rstrip("/"),
            ledger_retention_days=_int(env, "LEDGER_RETENTION_DAYS", 90),
            webhook_secret_grace_seconds=_int(env, "WEBHOOK_SECRET_GRACE_SECONDS", 86_400),
            limits_table=_require(env, "LIMITS_TABLE"),
            crm_lists_cache_seconds=_int(env, "CRM_LISTS_CACHE_SECONDS", 300),
        )


class SweepConfig(NamedTuple):
    integrations_table: str
    ledger_table: str
    limits_table: str
    inbox_queue_url: str
    redirect_uri: str
    ledger_retention_days: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SweepConfig:
        return cls(
            integrations_table=_require(env, "INTEGRATIONS_TABLE"),
            ledger_table=_require(env, "LEDGER_TABLE"),
            limits_table=_require(env, "LIMITS_TABLE"),
            inbox_queue_url=_require(env, "INBOX_QUEUE_URL"),
            redirect_uri=_require(env, "OAUTH_REDIRECT_URI"),
            ledger_retention_days=_int(env, "LEDGER_RETENTION_DAYS", 90),
        )


class SchedulerConfig(NamedTuple):
    """The planner: it only puts ``expand`` jobs on the jobs queue."""

    jobs_queue_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SchedulerConfig:
        return cls(jobs_queue_url=_require(env, "JOBS_QUEUE_URL"))


class JobsConfig(NamedTuple):
    """The jobs function: what the sweep and the backfill need (the same tables, queue and tokens), its own queues,
    scheduled work's share of each CRM's limit, and how often an idle Bitrix24 portal is swept."""

    stores: SweepConfig
    jobs_queue_url: str
    jobs_dlq_url: str
    share: float
    bitrix_idle_sweep_seconds: int
    webhook_secret_grace_seconds: int = 86_400
    crm_lists_cache_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> JobsConfig:
        minutes = _int(env, "BITRIX_IDLE_SWEEP_MINUTES", 180)
        if minutes < 0:
            raise ConfigError(f"environment variable BITRIX_IDLE_SWEEP_MINUTES must be >= 0, got {minutes}")
        return cls(
            stores=SweepConfig.from_env(env),
            jobs_queue_url=_require(env, "JOBS_QUEUE_URL"),
            jobs_dlq_url=_require(env, "JOBS_DLQ_URL"),
            share=_share(env, "BACKFILL_SHARE", 0.25),
            bitrix_idle_sweep_seconds=minutes * 60,
            webhook_secret_grace_seconds=_int(env, "WEBHOOK_SECRET_GRACE_SECONDS", 86_400),
            crm_lists_cache_seconds=_int(env, "CRM_LISTS_CACHE_SECONDS", 300),
        )


class ChatHookConfig(NamedTuple):
    integrations_table: str
    replies_queue_url: str
    chat_channel_secret_arn: str
    ledger_table: str  # the replies already taken (repeats refused)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ChatHookConfig:
        return cls(
            integrations_table=_require(env, "INTEGRATIONS_TABLE"),
            replies_queue_url=_require(env, "REPLIES_QUEUE_URL"),
            chat_channel_secret_arn=_require(env, "CHAT_CHANNEL_SECRET_ARN"),
            ledger_table=_require(env, "LEDGER_TABLE"),
        )
