"""What can go wrong talking to a CRM, as exceptions the worker can decide on.

The split follows openai-python: one base class, subclasses per status family, and ``retryable`` saying whether
the same call may succeed later. Messages never include tokens, codes or response bodies with personal data.
"""

from __future__ import annotations


class CrmError(Exception):
    """Base class. ``retryable``: the same request may succeed later without anyone's action."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class CrmUnavailable(CrmError):
    """5xx, timeouts, connection errors: transient."""

    retryable = True


class RateLimited(CrmError):
    """amoCRM 429, Bitrix24 503 QUERY_LIMIT_EXCEEDED or 429 OPERATION_TIME_LIMIT."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, status: int | None = None, code: str | None = None):
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class AccessTokenRejected(CrmError):
    """401: the access token expired or was rotated elsewhere; the token store decides what to do."""

    retryable = True


class GrantRevoked(CrmError):
    """The CRM says the authorization is dead (invalid_grant, revoked): only an admin can fix it."""


class NotConnected(CrmError):
    """The integration has no usable tokens (never connected, disconnected or waiting for re-authorization)."""


class AccountBlocked(CrmError):
    """amoCRM 403 (the account's API is blocked, or it cannot be accessed) or 402 (not paid)."""

    retryable = True


class InsufficientRights(CrmError):
    """amoCRM 403 «Недостаточно прав»: the user who authorized the integration may not read this (the account
    itself answers). Only an admin can fix it (grant the rights, or authorize as another user): no retry, no
    probe. ``refused``: what was refused (``GET /api/v4/leads``), for the status."""

    def __init__(self, message: str, *, refused: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.refused = refused


class NotFound(CrmError):
    """The entity does not exist (amoCRM 204/404, Bitrix24 'Not found')."""


class BadRequest(CrmError):
    """A 4xx that retrying will not fix."""


class BadResponse(CrmError):
    """The CRM answered success with a body that is not what its API returns (an HTML page with 200, not JSON)."""
