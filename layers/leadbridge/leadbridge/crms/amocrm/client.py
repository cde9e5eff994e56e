"""amoCRM REST v4 for one integration: paced to its limit, with the documented answers turned into errors.

- 7 requests/s per integration, a budget shared by every process (``SharedLimiter``); a 429 backs everyone off by
  ``retry_after`` and is retried here while the wait is short, else raised so the inbox message comes back later;
- 401 goes through the token store (another process may have rotated the token), then one retry;
- 403 has two meanings: «Недостаточно прав» (a problem+json naming missing rights, as documented for talks)
  raises ``InsufficientRights``; any other 403 is told apart by reading the account: if it answers, the refusal
  was about this read's rights (``InsufficientRights``), and only if it too is refused is the account blocked
  (``AccountBlocked``, as for 402, not paid): the worker stops calling that account and marks the integration;
- 204 on an entity read means "no such entity" (amoCRM's way), as does 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from leadbridge.contract.integration import Integration
from leadbridge.crms.amocrm.continue_url import continue_url_allowed
from leadbridge.crms.crm_values import as_dict, as_id, dicts, without_lone_surrogates
from leadbridge.crms.token_provider import TokenProvider
from leadbridge.http.client import request
from leadbridge.http.errors import (
    AccessTokenRejected,
    AccountBlocked,
    BadRequest,
    BadResponse,
    CrmError,
    CrmUnavailable,
    InsufficientRights,
    NotFound,
    RateLimited,
)
from leadbridge.http.ratelimit import SharedLimiter

MAX_INLINE_WAIT_SECONDS = 5.0
MAX_ATTEMPTS = 4
LEAD_CHAT_PAGES = 20  # the contacts' chat events since the lead was created, 2,000 at most (100 a page)
LEAD_CREATED_SLACK_SECONDS = 60  # a chat's first message and the lead it created share their second, or nearly


class AmoClient:
    def __init__(self, integration: Integration, tokens: TokenProvider, limiter: SharedLimiter) -> None:
        self.integration = integration
        self.tokens = tokens
        self.limiter = limiter
        self.base_url = f"https://{integration.crm_domain}"
        self.requests_made = 0

    def get_lead(self, lead_id: str) -> dict[str, Any]:
        return self._entity(f"/api/v4/leads/{lead_id}", {"with": "contacts"})

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return self._entity(f"/api/v4/contacts/{contact_id}", None)

    def get_account(self) -> dict[str, Any]:
        return self._entity(ACCOUNT_PATH, None)

    def amojo_account_id(self) -> str:
        """The account's id in the Chats API (``GET /api/v4/account?with=amojo_id``)."""
        found = self._entity("/api/v4/account", {"with": "amojo_id"}).get("amojo_id")
        if not isinstance(found, str) or not found:
            raise BadResponse("amoCRM gave no amojo_id for the account")
        return found

    def get_talk(self, talk_id: str) -> dict[str, Any]:
        return self._entity(f"/api/v4/talks/{talk_id}", None)

    def list_by_ids(self, entity: str, ids: list[str], extra: dict[str, str]) -> list[dict[str, Any]]:
        """Several leads or contacts in one request (``filter[id][]``); amoCRM answers 204 when none exists."""
        params = [("filter[id][]", entity_id) for entity_id in ids] + [*extra.items(), ("limit", "250")]
        data = self._call("GET", f"/api/v4/{entity}", params=params, json_body=None)
        return dicts(as_dict(as_dict(data).get("_embedded")).get(entity))

    def list_events(
        self, types: tuple[str, ...], since: int, until: int, page: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page (up to 100, the API's maximum) of the account's events log; and whether there is a next one."""
        params = [("filter[type][]", t) for t in types] + [
            ("filter[created_at][from]", str(since)),
            ("filter[created_at][to]", str(until)),
            ("limit", "100"),
            ("page", str(page)),
        ]
        data = as_dict(self._call("GET", "/api/v4/events", params=params, json_body=None))
        events = dicts(as_dict(data.get("_embedded")).get("events"))
        return events, "next" in as_dict(data.get("_links"))

    def all_pages(
        self, path: str, embedded: str, params: dict[str, str], max_pages: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every item of a paged list (``_embedded.<embedded>``, ``page`` by ``page`` while ``_links.next`` is
        there), up to ``max_pages``; and whether the list ended within them. 204 is an empty list."""
        items: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            data = as_dict(self._call("GET", path, params={**params, "page": str(page)}, json_body=None))
            items.extend(dicts(as_dict(data.get("_embedded")).get(embedded)))
            if "next" not in as_dict(data.get("_links")):
                return items, True
        return items, False

    def unsorted_chats(self, since: int, until: int) -> int:
        """How many chats came into Unsorted in ``[since, until]`` (``GET /api/v4/leads/unsorted/summary``)."""
        params = {"filter[created_at][from]": str(since), "filter[created_at][to]": str(until)}
        data = as_dict(self._call("GET", "/api/v4/leads/unsorted/summary", params=params, json_body=None))
        chats = as_dict(as_dict(data.get("categories")).get("chats")).get("total")
        if not isinstance(chats, int) or isinstance(chats, bool) or chats < 0:
            raise BadResponse("amoCRM unsorted summary without a chats total")
        return chats

    def lead_chat_talks(self, lead_id: str) -> list[str]:
        """The talks of a lead's incoming chat messages, the one whose first message is oldest first.

        amoCRM files chat events under the **contact** (reference A.1, "Entity quirk": the filter works correctly
        for these types only with ``filter[entity]=contact``), and labels each with the lead of its talk. So: the
        lead's contacts (at most 10 ids a filter), their chat events since the lead was created (a busy contact's
        newest few hundred may all be later), those labelled with this lead, ordered by each talk's earliest
        ``created_at`` rather than by the log's order.
        """
        lead = self.get_lead(lead_id)
        contacts = [c for c in (as_id(x.get("id")) for x in dicts(as_dict(lead.get("_embedded")).get("contacts"))) if c]
        if not contacts:
            return []
        created = lead.get("created_at")
        since = [
            ("filter[created_at][from]", str(int(created) - LEAD_CREATED_SLACK_SECONDS))
            for _ in [created]
            if isinstance(created, int) and not isinstance(created, bool) and created > 0
        ]
        first_seen: dict[str, int] = {}
        for page in range(1, LEAD_CHAT_PAGES + 1):
            params = [
                ("filter[type][]", "incoming_chat_message"),
                ("filter[entity][]", "contact"),
                *[("filter[entity_id][]", contact) for contact in contacts[:10]],
                *since,
                ("limit", "100"),
                ("page", str(page)),
            ]
            data = as_dict(self._call("GET", "/api/v4/events", params=params, json_body=None))
            for event in dicts(as_dict(data.get("_embedded")).get("events")):
                if event.get("entity_type") != "lead" or as_id(event.get("entity_id")) != lead_id:
                    continue  # the contact's chat on another lead (or on no lead any more)
                at = event.get("created_at")
                moment = at if isinstance(at, int) and not isinstance(at, bool) else 2**62
                for value in dicts(event.get("value_after")):
                    talk_id = as_id(as_dict(value.get("message")).get("talk_id"))
                    if talk_id:
                        first_seen[talk_id] = min(moment, first_seen.get(talk_id, moment))
            if "next" not in as_dict(data.get("_links")):
                break
        return sorted(first_seen, key=lambda talk: (first_seen[talk], int(talk)))

    def refused_reads(self) -> list[str]:
        """What the worker and the sweep need to read and the grant's user may not (``GET /api/v4/leads``...): a
        connect checks it once, before any lead is affected."""
        refused = []
        for path in ("/api/v4/leads", "/api/v4/contacts", "/api/v4/events"):
            try:
                self._call("GET", path, params={"limit": "1"}, json_body=None)
            except InsufficientRights as exc:
                refused.append(exc.refused)
        return refused

    def webhooks(self) -> list[dict[str, Any]]:
        """The account's webhook subscriptions (``GET /api/v4/webhooks``; an admin's grant)."""
        data = as_dict(self._call("GET", "/api/v4/webhooks", params=None, json_body=None))
        return dicts(as_dict(data.get("_embedded")).get("webhooks"))

    def subscribe_webhook(self, destination: str, events: list[str]) -> None:
        """Subscribe ``destination`` to ``events`` (``POST /api/v4/webhooks``: an address already there is updated)."""
        self._call("POST", "/api/v4/webhooks", params=None, json_body={"destination": destination, "settings": events})

    def unsubscribe_webhook(self, destination: str) -> None:
        try:
            self._call("DELETE", "/api/v4/webhooks", params=None, json_body={"destination": destination})
        except NotFound:
            return  # gone already

    def continue_bot(self, url: str, data: dict[str, Any]) -> None:
        """Let a Salesbot waiting on ``widget_request`` go on (``POST /api/v4/salesbot/{bot}/continue/{id}``); the
        caller has checked that ``url`` is this account's own continue URL."""
        if not continue_url_allowed(self.integration, url):
            raise BadRequest("not this account's continue URL: the token stays home")
        self._call("POST", urlsplit(url).path, params=None, json_body={"data": data, "execute_handlers": []})

    def add_lead_notes(self, notes: list[tuple[str, str, str]]) -> None:
        """Service notes on several leads in one request; they never trigger the digital pipeline."""
        body = [
            {
                "entity_id": int(lead_id),
                "note_type": "service_message",
                "params": {"service": service, "text": text},
                "is_need_to_trigger_digital_pipeline": False,
            }
            for lead_id, service, text in notes
        ]
        self._call("POST", "/api/v4/leads/notes", params=None, json_body=body)

    def _account_answers(self, refused_path: str) -> bool:
        if refused_path == ACCOUNT_PATH:
            return False
        try:
            self._call("GET", ACCOUNT_PATH, params=None, json_body=None)
        except CrmError:
            return False
        return True

    def _entity(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        data = self._call("GET", path, params=params, json_body=None)
        if data is None:
            raise NotFound(f"amoCRM {path.rsplit('/', 2)[-2]} not found", status=204)
        return data

    def _call(
        self, method: str, path: str, params: dict[str, str] | list[tuple[str, str]] | None, json_body: object | None
    ) -> dict[str, Any] | None:
        token = self.tokens.get(self.integration)
        refreshed_after_401 = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.requests_made += 1
            try:
                response = request(
                    method,
                    self.base_url + path,
                    budget=self.limiter,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {token.value}"},
                )
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable(f"amoCRM unreachable: {type(exc).__name__}") from exc
                continue
            status = response.status_code
            if status == 200:
                try:
                    payload = without_lone_surrogates(response.json())
                except ValueError as exc:  # an HTML page from a proxy, a truncated body
                    raise BadResponse(f"amoCRM answered {path.rsplit('/', 2)[-2]} with 200 and no JSON") from exc
                return payload if isinstance(payload, dict) else {"_items": payload}
            if status == 204:
                return None
            if status in {201, 202}:  # accepted (a bot continued): a body is optional
                try:
                    accepted = response.json()
                except ValueError:
                    return None
                return accepted if isinstance(accepted, dict) else None
            if status == 401:
                if refreshed_after_401:
                    raise AccessTokenRejected("amoCRM rejected a freshly refreshed token", status=401)
                token = self.tokens.after_unauthorized(self.integration, token.version)
                refreshed_after_401 = True
                continue
            if status == 429:
                wait = _retry_after(response)
                self.limiter.back_off(wait)
                if wait > MAX_INLINE_WAIT_SECONDS or attempt == MAX_ATTEMPTS:
                    raise RateLimited("amoCRM rate limit", retry_after=wait, status=429)
                continue
            if status == 403 and (_missing_rights(response) or self._account_answers(path)):
                # A 403 we cannot read (``{"detail": "Forbidden"}``, an IP allowlist's page) while the account
                # itself answers is about this read's rights, not a block: a block would loop probe <-> worker.
                raise InsufficientRights(
                    f"amoCRM refused {method} {_kind(path)}: the authorizing user lacks the rights (403)",
                    refused=f"{method} {_kind(path)}",
                    status=403,
                )
            if status in {402, 403}:
                raise AccountBlocked(f"amoCRM refused access to the account ({status})", status=status)
            if status == 404:
                raise NotFound(f"amoCRM {path} not found", status=404)
            if status >= 500:
                if attempt == MAX_ATTEMPTS:
                    raise CrmUnavailable("amoCRM server error", status=status)
                self.limiter.back_off(0.5 * attempt)
                continue
            raise BadRequest(f"amoCRM refused the request ({status})", status=status)
        raise CrmUnavailable("amoCRM: attempts exhausted")


ACCOUNT_PATH = "/api/v4/account"
MISSING_RIGHTS = ("недостаточно прав", "insufficient rights", "not enough rights", "permission", "access denied")


def _missing_rights(response: httpx.Response) -> bool:
    """A 403 that says the user lacks rights (a JSON problem whose detail says so), not that the account is
    blocked (an HTML page, or a body about blocking)."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    said = " ".join(str(body.get(k) or "") for k in ("detail", "title", "hint")).lower()
    return any(phrase in said for phrase in MISSING_RIGHTS) and "blocked" not in said and "заблок" not in said


def _kind(path: str) -> str:
    """The resource a path names, without ids (``/api/v4/leads/123`` -> ``/api/v4/leads``)."""
    return "/".join(part for part in path.split("/") if not part.isdigit())[:80] or "/"


def _retry_after(response: httpx.Response) -> float:
    header = response.headers.get("Retry-After")
    if header and header.strip().isdigit():
        return float(header.strip())
    try:
        body = response.json()
    except ValueError:
        return 1.0  # amoCRM may answer 429 as an HTML page
    if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
        return float(body["retry_after"])
    return 1.0
