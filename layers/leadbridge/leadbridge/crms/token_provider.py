"""A usable access token for an integration, whatever other processes are doing.

Both CRMs rotate refresh tokens on every use, so two processes refreshing at once lose the integration. Here:
- a token that is still fresh (with a margin) is returned as read;
- otherwise one process takes the lease, refreshes, and saves the pair as a compare-and-swap on the version;
  everyone else waits for the new version and uses it;
- after a CRM 401 the caller asks again with the version it used: if another process rotated the token in the
  meantime that one is returned, else the token is refreshed (the caller retries its request once);
- a CRM saying the grant is dead moves the integration to ``reauth_required`` and stops all refreshes;
- so do tokens that are gone from an integration that was connected (whatever removed them, it needs a person).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger

from leadbridge.aws.store.tokens import DynamoTokens, StoredToken, TokenConflict, TokenSet
from leadbridge.contract.integration import Integration
from leadbridge.http.errors import CrmUnavailable, GrantRevoked, NotConnected

logger = Logger(child=True)

FRESHNESS_MARGIN_SECONDS = 120
LEASE_SECONDS = 30  # longer than one token request can take (10 s timeout), so a lease never lapses mid-refresh
WAIT_FOR_OTHER_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    version: int
    extra: dict[str, str]

    def __repr__(self) -> str:
        return f"AccessToken(v{self.version})"


class Refresher(Protocol):
    def refresh(self, integration: Integration, stored: StoredToken) -> TokenSet:
        """Exchange the stored refresh token. Raises GrantRevoked when the CRM says the grant is dead."""
        ...


class GrantObserver(Protocol):
    def grant_revoked(self, integration: Integration, reason: str) -> None: ...


class TokenProvider:
    def __init__(
        self,
        tokens: DynamoTokens,
        refreshers: dict[str, Refresher],
        observer: GrantObserver | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tokens = tokens
        self.refreshers = refreshers
        self.observer = observer
        self.clock = clock
        self.sleep = sleep
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._batch: dict[str, StoredToken] | None = None

    def begin_batch(self) -> None:
        """Until ``end_batch``, a token read once serves every request of the batch (a worker batch makes several
        per integration: reads, then notes). The CRM refusing it, or a refresh, reads the table again."""
        self._batch = {}

    def end_batch(self) -> None:
        self._batch = None

    def get(self, integration: Integration) -> AccessToken:
        stored = self._batch.get(integration.integration_id) if self._batch is not None else None
        if stored is None:
            stored = self._read(integration)
            if self._batch is not None:
                self._batch[integration.integration_id] = stored
        if stored.tokens.expires_at - FRESHNESS_MARGIN_SECONDS > self.clock():
            return _access(stored)
        self._forget(integration)
        return self._refresh(integration, stored)

    def _forget(self, integration: Integration) -> None:
        if self._batch is not None:
            self._batch.pop(integration.integration_id, None)

    def has_live_access(self, integration: Integration) -> bool:
        """Whether a request now would go out without a token call (the stored access token is still fresh)."""
        stored = self.tokens.read(integration.integration_id)
        return (
            stored is not None
            and stored.state == "active"
            and stored.tokens.expires_at - FRESHNESS_MARGIN_SECONDS > self.clock()
        )

    def after_unauthorized(self, integration: Integration, used_version: int) -> AccessToken:
        """The CRM refused the token of ``used_version``: a newer one if someone saved it, else a refresh."""
        self._forget(integration)
        stored = self._read(integration)
        if stored.version != used_version:
            return _access(stored)
        return self._refresh(integration, stored)

    def refresh_now(self, integration: Integration) -> AccessToken:
        """Scheduled refresh: refresh unless another process is doing it (then take its result)."""
        self._forget(integration)
        return self._refresh(integration, self._read(integration))

    def _read(self, integration: Integration) -> StoredToken:
        stored = self.tokens.read(integration.integration_id)
        if stored is None:
            if integration.account_id is not None:  # it was connected once: its grant is lost
                self._observe_revoked(integration, "tokens missing")
                raise GrantRevoked("integration's tokens are missing; it needs re-authorization")
            raise NotConnected("integration is not connected")
        if stored.state == "reauth_required":
            raise GrantRevoked("integration needs re-authorization")
        if stored.state != "active":
            raise NotConnected(f"integration is {stored.state}")
        return stored

    def _refresh(self, integration: Integration, stored: StoredToken) -> AccessToken:
        if stored.tokens.refresh_token is None:
            # amoCRM long-lived token: nothing to refresh; when it is gone only a person can issue a new one.
            if stored.tokens.expires_at > self.clock():
                return _access(stored)
            self._revoked(integration, "long-lived token expired")
            raise GrantRevoked("long-lived token expired")
        deadline = self.clock() + WAIT_FOR_OTHER_SECONDS
        while True:
            now = int(self.clock())
            if self.tokens.try_lease(integration.integration_id, stored.version, self.owner, now, LEASE_SECONDS):
                return self._refresh_under_lease(integration, stored)
            # Someone else holds the lease, or already saved a newer version: wait for it.
            self.sleep(0.1)
            latest = self._read(integration)
            if latest.version != stored.version and latest.tokens.expires_at - FRESHNESS_MARGIN_SECONDS > self.clock():
                return _access(latest)
            stored = latest
            if self.clock() > deadline:
                raise CrmUnavailable("token refresh by another process did not finish in time")

    def _refresh_under_lease(self, integration: Integration, stored: StoredToken) -> AccessToken:
        refresher = self.refreshers[integration.crm]
        try:
            fresh = refresher.refresh(integration, stored)
        except GrantRevoked as exc:
            self._revoked(integration, str(exc))
            raise
        except Exception:
            self.tokens.release(integration.integration_id, self.owner)
            raise
        try:
            self.tokens.save_refreshed(integration.integration_id, stored.version, self.owner, fresh)
        except TokenConflict:
            # Our lease lapsed and another process saved first; theirs is the pair the CRM now honours.
            logger.warning("token refreshed concurrently", extra={"integration_id": integration.integration_id})
            return _access(self._read(integration))
        logger.info("token refreshed", extra={"integration_id": integration.integration_id, "crm": integration.crm})
        return AccessToken(value=fresh.access_token, version=stored.version + 1, extra=fresh.extra)

    def _revoked(self, integration: Integration, reason: str) -> None:
        self._forget(integration)
        self.tokens.set_state(integration.integration_id, "reauth_required", reason)
        self._observe_revoked(integration, reason)

    def _observe_revoked(self, integration: Integration, reason: str) -> None:
        logger.warning("grant revoked", extra={"integration_id": integration.integration_id, "reason": reason})
        if self.observer is not None:
            self.observer.grant_revoked(integration, reason)


def _access(stored: StoredToken) -> AccessToken:
    return AccessToken(value=stored.tokens.access_token, version=stored.version, extra=stored.tokens.extra)
