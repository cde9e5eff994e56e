"""A fake amoCRM, as unkind as the real one (reference/amocrm.md §2-3).

- OAuth: ``POST /oauth2/access_token`` (JSON). Codes live 20 minutes and are single-use; refresh tokens are
  single-use (a reused one gets amoCRM's 400); access tokens expire (401 problem+json afterwards).
- REST v4: talks, leads (``with=contacts``), contacts, lead notes, account, the pickers' custom fields (paged),
  pipelines and sources; lists of leads and contacts by
  ``filter[id][]`` (204 when none exists; an account with ``filters_ignored`` answers every entity, as one without
  the API-filter add-on might), notes of several leads in one ``POST /api/v4/leads/notes``. A missing lead or
  contact answers 204 with no body, a missing talk 404, errors are ``application/problem+json``.
- Limits: 7 requests per second per integration (any 1-second window) -> 429; more than 10 violations in a
  minute block the account: 403 with an HTML page on every request.
- ``data_dir``: recorded responses, ``<dir>/api/v4/<path>.json`` served for ``GET /api/v4/<path>`` (its page 1), and
  ``<dir>/api/v4/<path>.page-<n>.json`` for ``?page=<n>`` of a paged list.
- Broken answers for hostile-input tests: ``raw_answers[(subdomain, path)]`` answers a GET as given (an HTML page
  with status 200...), ``token_answer`` answers every token request.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadbridge.crms.amocrm.bot_token import sign_bot_token
from leadbridge_local.fakes.base import ArrivalWindow, FakeClock, FakeCrmBase, json_response, remember_secret
from leadbridge_local.loopback import HttpRequest, HttpResponse

PROBLEM = "application/problem+json"
HAL = "application/hal+json"
# The events a webhook may be subscribed to (crm_platform/webhooks-api; tests/vendor/amocrm/webhooks-events.json).
WEBHOOK_EVENTS = frozenset(
    {
        *(
            f"{verb}_{entity}"
            for verb in ("add", "update", "delete", "responsible")
            for entity in ("lead", "contact", "company", "customer", "task")
        ),
        *(f"restore_{entity}" for entity in ("lead", "contact", "company")),
        *(f"note_{entity}" for entity in ("lead", "contact", "company", "customer")),
        "add_talk",
        "update_talk",
        "status_lead",
        "add_chat_template_review",
    }
)
CODE_TTL = 20 * 60
ACCESS_TTL = 86_400
PER_INTEGRATION_RPS = 7
BLOCK_AFTER_VIOLATIONS = 10


@dataclass
class Account:
    subdomain: str
    account_id: int
    talks: dict[int, dict[str, Any]] = field(default_factory=dict)
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    bot_continues: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, body) of continue calls
    blocked: bool = False
    denied_paths: set[str] = field(default_factory=set)  # path prefixes the authorizing user has no rights to
    # path prefix -> what is answered instead: a 403 naming nothing (``{"detail": "Forbidden"}``), a 200 HTML page
    canned_answers: dict[str, HttpResponse] = field(default_factory=dict)
    filters_ignored: bool = False
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # GET/POST/DELETE /api/v4/webhooks
    amojo_id: str = ""  # the account's id in the Chats API (GET /api/v4/account?with=amojo_id)
    violations: deque[float] = field(default_factory=deque)
    # The pickers' lists (crm_platform/custom-fields, leads_pipelines, sources-api). The lead field 778899 is the
    # session field of the sample settings (events/integrations_api); contacts have their predefined phone / e-mail.
    custom_fields: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            "leads": [custom_field(778899, "Сессия аналитики", "text", "leads")],
            "contacts": [
                custom_field(3, "Телефон", "multitext", "contacts", code="PHONE"),
                custom_field(5, "Email", "multitext", "contacts", code="EMAIL"),
            ],
        }
    )
    pipelines: list[dict[str, Any]] = field(default_factory=lambda: [pipeline(3177727, "Воронка", main=True)])
    sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Grant:
    subdomain: str
    client_id: str


def _problem(status: int, title: str, detail: str, **extra: Any) -> HttpResponse:
    body = {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail, **extra}
    return json_response(status, body, PROBLEM)


BLOCKED_PAGE = b"<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1></body></html>"


class FakeAmoCRM(FakeCrmBase):
    def __init__(self, clock: FakeClock | None = None, data_dir: Path | None = None) -> None:
        super().__init__(clock)
        self.accounts: dict[str, Account] = {}
        self.clients: dict[str, tuple[str, str]] = {}  # client_id -> (secret, redirect_uri)
        self.codes: dict[str, tuple[Grant, float]] = {}
        self.access_tokens: dict[str, tuple[Grant, float]] = {}
        self.refresh_tokens: dict[str, tuple[Grant, bool]] = {}  # token -> (grant, used)
        self.windows: dict[str, ArrivalWindow] = {}
        self.data_dir = data_dir
        self.retry_after = 1
        self.access_ttl = ACCESS_TTL
        self.raw_answers: dict[tuple[str, str], HttpResponse] = {}
        self.token_answer: HttpResponse | None = None

    # ------------------------------------------------------------------ seeding (tests and the local runner)
    def add_account(self, subdomain: str, account_id: int) -> Account:
        with self.lock:
            amojo_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"amojo:{subdomain}:{account_id}"))
            return self.accounts.setdefault(subdomain, Account(subdomain, account_id, amojo_id=amojo_id))

    def register_client(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.clients[client_id] = (remember_secret(client_secret), redirect_uri)

    def issue_code(self, subdomain: str, client_id: str) -> str:
        code = remember_secret("def502" + secrets.token_hex(24))
        self.codes[code] = (Grant(subdomain, client_id), self.clock.now() + CODE_TTL)
        return code

    def issue_tokens(self, subdomain: str, client_id: str) -> dict[str, Any]:
        """A fresh pair, as after a code exchange (for seeding a connected integration)."""
        with self.lock:
            return self._pair(Grant(subdomain, client_id))

    def revoke_grants(self, subdomain: str) -> None:
        """An admin revoked the integration's access: its tokens stop working, its refresh tokens are refused."""
        with self.lock:
            self.access_tokens = {t: v for t, v in self.access_tokens.items() if v[0].subdomain != subdomain}
            self.refresh_tokens = {
                t: (g, True if g.subdomain == subdomain else used) for t, (g, used) in self.refresh_tokens.items()
            }

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens = {t: (g, 0.0) for t, (g, _) in self.access_tokens.items()}

    def add_talk(
        self,
        subdomain: str,
        talk_id: int,
        *,
        lead_id: int | None,
        contact_id: int,
        origin: str,
        created_at: int,
        lead: dict[str, Any] | None = None,
        contact: dict[str, Any] | None = None,
        chat_id: str | None = None,
    ) -> None:
        account = self.accounts[subdomain]
        with self.lock:
            account.talks[talk_id] = {
                "talk_id": talk_id,
                "created_at": created_at,
                "updated_at": created_at,
                "rate": 0,
                "contact_id": contact_id,
                "chat_id": chat_id or f"chat-{talk_id}",
                "entity_id": lead_id,
                "entity_type": "lead" if lead_id else None,
                "is_in_work": True,
                "is_read": False,
                "origin": origin,
                "missed_at": None,
                "account_id": account.account_id,
            }
            if lead_id is not None and lead is not None:
                account.leads[lead_id] = {
                    "id": lead_id,
                    "account_id": account.account_id,
                    "created_at": created_at,
                    **lead,
                }
                account.leads[lead_id].setdefault("_embedded", {})["contacts"] = [{"id": contact_id, "is_main": True}]
            if contact is not None:
                account.contacts[contact_id] = {"id": contact_id, "account_id": account.account_id, **contact}
            # The events log: the talk's first incoming message (reference/amocrm-chats-events-dp.md A.1).
            account.events.append(
                {
                    "id": f"01ev{talk_id:022d}",
                    "type": "incoming_chat_message",
                    "entity_id": lead_id or contact_id,
                    "entity_type": "lead" if lead_id else "contact",
                    "created_by": 0,
                    "created_at": created_at,
                    "value_after": [{"message": {"id": f"msg-{talk_id}", "origin": origin, "talk_id": talk_id}}],
                    "value_before": [],
                    "account_id": account.account_id,
                    "_embedded": {"entity": {"id": lead_id or contact_id, "linked_talk_contact_id": contact_id}},
                }
            )

    def add_chat_message_event(self, subdomain: str, talk_id: int, created_at: int, *, incoming: bool = True) -> None:
        """A later message of a talk in the events log: a talk shows up on as many pages as it has messages."""
        account = self.accounts[subdomain]
        talk = account.talks[talk_id]
        with self.lock:
            number = len(account.events) + 1
            account.events.append(
                {
                    "id": f"01ev{talk_id:012d}{number:010d}",
                    "type": "incoming_chat_message" if incoming else "outgoing_chat_message",
                    "entity_id": talk["entity_id"] or talk["contact_id"],
                    "entity_type": "lead" if talk["entity_id"] else "contact",
                    "created_by": 0,
                    "created_at": created_at,
                    "value_after": [
                        {"message": {"id": f"msg-{talk_id}-{number}", "origin": talk["origin"], "talk_id": talk_id}}
                    ],
                    "value_before": [],
                    "account_id": account.account_id,
                    "_embedded": {
                        "entity": {
                            "id": talk["entity_id"] or talk["contact_id"],
                            "linked_talk_contact_id": talk["contact_id"],
                        }
                    },
                }
            )

    def add_lead_without_chat(self, subdomain: str, lead_id: int, contact_id: int, created_at: int) -> None:
        """A lead that came from a form or by hand: no talk, no chat message in the events log."""
        account = self.accounts[subdomain]
        with self.lock:
            account.leads[lead_id] = {
                "id": lead_id,
                "account_id": account.account_id,
                "created_at": created_at,
                "_embedded": {"contacts": [{"id": contact_id, "is_main": True}]},
            }
            account.contacts[contact_id] = {"id": contact_id, "account_id": account.account_id, "name": "Form"}

    def salesbot_request(
        self,
        subdomain: str,
        client_secret: str,
        lead_id: int,
        data: dict[str, Any],
        *,
        bot_id: int = 321,
        continue_id: str = "123",
        issued_at: float | None = None,
        lifetime: int = 300,
        entity_type: int | str = 2,
    ) -> bytes:
        """The body of a Salesbot ``widget_request`` as amoCRM posts it: a JWT signed HS512 with the integration's
        client secret (reference E.3), the step's data, and the bot's continue URL."""
        account = self.accounts[subdomain]
        now = int(issued_at if issued_at is not None else self.clock.now())
        claims = {
            "iss": f"https://{subdomain}.amocrm.ru",
            "aud": "https://leadbridge.example/oauth2/callback",  # the integration's redirect URI
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "account_id": account.account_id,
            "subdomain": subdomain,
            "entity_type": entity_type,  # a number, as amoCRM's own library reads it (2: leads)
            "entity_id": lead_id,
            "client_uuid": str(uuid.UUID(int=account.account_id)),  # required by amoCRM's library; no jti
            "bot_type": "salesbot",
        }
        body = {
            "token": sign_bot_token(claims, client_secret),
            "data": data,
            "return_url": f"https://{subdomain}.amocrm.ru/api/v4/salesbot/{bot_id}/continue/{continue_id}",
        }
        return json.dumps(body).encode()

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        subdomain = request.host.split(".", 1)[0]
        account = self.accounts.get(subdomain)
        if account is not None and account.blocked:
            self.count("blocked_answers")
            return HttpResponse(403, BLOCKED_PAGE, {"Content-Type": "text/html"})
        if request.path == "/oauth2/access_token" and request.method == "POST":
            self.count("token_requests")
            return self.token_answer or self._token(request, subdomain)
        if not request.path.startswith("/api/v4/"):
            return _problem(404, "Not Found", "Unknown path")
        return self._api(request, subdomain, account)

    def _token(self, request: HttpRequest, subdomain: str) -> HttpResponse:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _problem(400, "Bad Request", "Request validation failed")
        client = self.clients.get(str(body.get("client_id")))
        bad = _problem(
            400, "Некорректный запрос", "В запросе отсутствует ряд параметров или параметры невалидны", hint=""
        )
        if client is None or client[0] != body.get("client_secret"):
            return _problem(401, "Unauthorized", "Client authentication failed")
        if body.get("redirect_uri") != client[1]:
            return bad
        with self.lock:
            grant_type = body.get("grant_type")
            if grant_type == "authorization_code":
                entry = self.codes.pop(str(body.get("code")), None)
                if entry is None or entry[1] < self.clock.now() or entry[0].subdomain != subdomain:
                    return _problem(
                        400,
                        "Некорректный запрос",
                        "Authorization code has expired",
                        hint="Authorization code has expired",
                    )
                return json_response(200, self._pair(entry[0]))
            if grant_type == "refresh_token":
                token = str(body.get("refresh_token"))
                found = self.refresh_tokens.get(token)
                self.count("refresh_requests")
                if found is None or found[1] or found[0].subdomain != subdomain:
                    self.count("refresh_rejected")
                    return _problem(400, "Некорректный запрос", "Token has been revoked", hint="Token has been revoked")
                self.refresh_tokens[token] = (found[0], True)
                return json_response(200, self._pair(found[0]))
        return bad

    def _pair(self, grant: Grant) -> dict[str, Any]:
        access = remember_secret("eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24))
        refresh = remember_secret("def50200" + secrets.token_hex(32))
        self.access_tokens[access] = (grant, self.clock.now() + self.access_ttl)
        self.refresh_tokens[refresh] = (grant, False)
        return {
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "server_time": int(self.clock.now()),
            "access_token": access,
            "refresh_token": refresh,
        }

    def _api(self, request: HttpRequest, subdomain: str, account: Account | None) -> HttpResponse:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        with self.lock:
            grant = self.access_tokens.get(token)
            if grant is None or grant[1] < self.clock.now() or grant[0].subdomain != subdomain or account is None:
                self.count("unauthorized")
                return _problem(401, "Unauthorized", "Неверный логин или пароль")
            if not self._within_limit(grant[0].client_id, account, request.arrived_at):
                return self.limit_error()
        self.count("api_requests")
        if any(request.path.startswith(prefix) for prefix in account.denied_paths):
            self.count("rights_refused")  # documented for talks: 403 «Недостаточно прав»
            return _problem(403, "Forbidden", "Недостаточно прав")
        for prefix, refusal in account.canned_answers.items():
            if request.path.startswith(prefix):
                self.count("canned_answers")
                return refusal
        return self.injected_fault() or self._route(request, account)

    def limit_error(self) -> HttpResponse:
        return _problem(
            429,
            "Too Many Requests",
            "You have sent too many requests in a given amount of time. Please try again later.",
            retry_after=self.retry_after,
        )

    def server_error(self) -> HttpResponse:
        return _problem(502, "Bad Gateway", "upstream failed")

    def _within_limit(self, client_id: str, account: Account, arrived_at: float) -> bool:
        window = self.windows.setdefault(client_id, ArrivalWindow(PER_INTEGRATION_RPS))
        if not window.admits(arrived_at):
            self.count("limit_violations")
            account.violations.append(arrived_at)
            while account.violations and arrived_at - account.violations[0] > 60:
                account.violations.popleft()
            if len(account.violations) > BLOCK_AFTER_VIOLATIONS:
                account.blocked = True
            return False
        return True

    def _route(self, request: HttpRequest, account: Account) -> HttpResponse:
        path = request.path.rstrip("/")
        raw = self.raw_answers.get((account.subdomain, path)) if request.method == "GET" else None
        if raw is not None:
            return raw
        page = request.arg("page") or "1"
        recorded_as = path if page == "1" or not page.isdigit() else f"{path}.page-{page}"
        recorded = self._recorded(recorded_as) if request.method == "GET" else None
        if recorded is not None:
            return recorded
        if match := re.fullmatch(r"/api/v4/talks/(\d+)", path):
            talk = account.talks.get(int(match[1]))
            if talk is None:
                return _problem(404, "Not Found", "Беседа не найдена")
            return json_response(200, talk, HAL)
        if match := re.fullmatch(r"/api/v4/leads/(\d+)", path):
            lead = account.leads.get(int(match[1]))
            if lead is None:
                return HttpResponse(204)
            if request.arg("with") != "contacts":
                lead = {k: v for k, v in lead.items() if k != "_embedded"}
            return json_response(200, lead, HAL)
        if match := re.fullmatch(r"/api/v4/contacts/(\d+)", path):
            contact = account.contacts.get(int(match[1]))
            return json_response(200, contact, HAL) if contact else HttpResponse(204)
        if (match := re.fullmatch(r"/api/v4/leads/(\d+)/notes", path)) and request.method == "POST":
            return self._add_notes(account, int(match[1]), request)
        if path == "/api/v4/leads/notes" and request.method == "POST":
            self.count("notes_requests")
            return self._add_notes(account, None, request)
        if path == "/api/v4/webhooks":
            return self._webhooks(account, request)
        if path in {"/api/v4/leads", "/api/v4/contacts"} and request.method == "GET":
            return self._list(account, path.rsplit("/", 1)[1], request)
        if re.fullmatch(r"/api/v4/(salesbot|marketingbot)/\d+/continue/[\w-]+", path) and request.method == "POST":
            try:
                body = request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("data", {}), dict):
                return _problem(400, "Bad Request", "Request validation failed")
            with self.lock:
                account.bot_continues.append((path, body))
            return HttpResponse(202)
        if path == "/api/v4/leads/unsorted/summary" and request.method == "GET":
            self.count("unsorted_summary_requests")
            return self._unsorted_summary(account, request)
        if path == "/api/v4/events" and request.method == "GET":
            self.count("events_requests")
            return self._events(account, request)
        if (match := re.fullmatch(r"/api/v4/(leads|contacts)/custom_fields", path)) and request.method == "GET":
            return self._custom_fields(account, match[1], request)
        if path == "/api/v4/leads/pipelines" and request.method == "GET":
            body = {
                "_total_items": len(account.pipelines),
                "_links": {"self": {"href": f"https://{account.subdomain}.amocrm.ru/api/v4/leads/pipelines"}},
                "_embedded": {"pipelines": account.pipelines},
            }
            return json_response(200, body, HAL)
        if path == "/api/v4/sources" and request.method == "GET":
            if not account.sources:
                return HttpResponse(204)
            return json_response(
                200, {"_total_items": len(account.sources), "_embedded": {"sources": account.sources}}, HAL
            )
        if path == "/api/v4/account":
            account_body: dict[str, Any] = {"id": account.account_id, "subdomain": account.subdomain}
            if "amojo_id" in (request.arg("with") or "").split(","):
                account_body["amojo_id"] = account.amojo_id
            return json_response(200, account_body, HAL)
        return _problem(404, "Not Found", "Unknown path")

    def _list(self, account: Account, entity: str, request: HttpRequest) -> HttpResponse:
        store = account.leads if entity == "leads" else account.contacts
        wanted = {int(v) for k, values in request.query.items() if k.startswith("filter[id]") for v in values}
        if account.filters_ignored:
            wanted = set(store)
        found = []
        for entity_id in sorted(wanted):
            item = store.get(entity_id) or self._recorded_item(f"/api/v4/{entity}/{entity_id}")
            if item is None:
                continue
            if entity == "leads" and request.arg("with") != "contacts":
                item = {k: v for k, v in item.items() if k != "_embedded"}
            found.append(item)
        if not found:
            return HttpResponse(204)
        return json_response(200, {"_page": 1, "_embedded": {entity: found}}, HAL)

    def _events(self, account: Account, request: HttpRequest) -> HttpResponse:
        """``GET /api/v4/events``: ``filter[type][]``, ``filter[created_at][from|to]``, ``limit`` (at most 100),
        ``page``; newest first; 204 when nothing matches (reference/amocrm-chats-events-dp.md A.1)."""
        types = {v for k, values in request.query.items() if k.startswith("filter[type]") for v in values}
        entities = {v for k, values in request.query.items() if k.startswith("filter[entity]") for v in values}
        entity_ids = {v for k, values in request.query.items() if k.startswith("filter[entity_id]") for v in values}
        if entity_ids and len(entities) != 1:  # documented: entity_id needs exactly one entity
            return _problem(400, "Bad Request", "filter[entity_id] requires one filter[entity]")
        if len(entity_ids) > 10:  # documented: «до 10-ти ID»
            return _problem(400, "Bad Request", "filter[entity_id] takes at most 10 ids")
        since = int(request.arg("filter[created_at][from]") or 0)
        until = int(request.arg("filter[created_at][to]") or 2**62)
        limit = int(request.arg("limit") or 50)
        if limit > 100:
            return _problem(400, "Bad Request", "limit must be at most 100")
        page = max(1, int(request.arg("page") or 1))
        with self.lock:
            matching = sorted(
                (
                    e
                    for e in account.events
                    if (not types or e["type"] in types)
                    and since <= e["created_at"] <= until
                    and (not entities or _filed_under(e)[0] in entities)
                    and (not entity_ids or _filed_under(e)[1] in entity_ids)
                ),
                key=lambda e: (-e["created_at"], e["id"]),
            )
        chunk = matching[(page - 1) * limit : page * limit]
        if not chunk:
            return HttpResponse(204)
        links: dict[str, Any] = {"self": {"href": f"/api/v4/events?page={page}"}}
        if page * limit < len(matching):
            links["next"] = {"href": f"/api/v4/events?page={page + 1}"}
        return json_response(200, {"_page": page, "_links": links, "_embedded": {"events": chunk}}, HAL)

    def _webhooks(self, account: Account, request: HttpRequest) -> HttpResponse:
        """``/api/v4/webhooks`` as documented (crm_platform/webhooks-api, tests/vendor/amocrm/webhooks-*.json):
        GET lists (``filter[destination]``: the exact address), POST subscribes ``destination`` to ``settings``
        (the documented events only; an address already there is updated), DELETE unsubscribes a ``destination``
        (404 when there is none). At most 100 hooks an account."""
        self.count(f"webhooks_{request.method.lower()}")
        with self.lock:
            if request.method == "GET":
                wanted = request.arg("filter[destination]")
                found = [w for w in account.webhooks if wanted is None or w["destination"] == wanted]
                if not found:
                    return HttpResponse(204)
                return json_response(200, {"_total_items": len(found), "_embedded": {"webhooks": found}}, HAL)
            try:
                body = request.json()
            except ValueError:
                body = None
            destination = body.get("destination") if isinstance(body, dict) else None
            if not isinstance(destination, str) or not destination.startswith(("https://", "http://")):
                return _problem(400, "Bad Request", "destination must be a valid URL")
            if request.method == "DELETE":
                before = len(account.webhooks)
                account.webhooks = [w for w in account.webhooks if w["destination"] != destination]
                return (
                    HttpResponse(204)
                    if len(account.webhooks) < before
                    else _problem(404, "Not Found", "Hook not found")
                )
            settings = body.get("settings") if isinstance(body, dict) else None
            if not isinstance(settings, list) or not settings or not all(s in WEBHOOK_EVENTS for s in settings):
                return _problem(422, "Unprocessable Entity", "settings must name documented events")
            now = int(self.clock.now())
            existing = next((w for w in account.webhooks if w["destination"] == destination), None)
            if existing is None:
                if len(account.webhooks) >= 100:
                    return _problem(400, "Bad Request", "An account may have at most 100 webhooks")
                existing = {"id": 1_000_000 + len(account.webhooks), "destination": destination, "created_at": now,
                            "account_id": account.account_id, "created_by": 1, "sort": len(account.webhooks) + 1}  # fmt: skip
                account.webhooks.append(existing)
            existing.update({"updated_at": now, "disabled": False, "settings": list(settings)})
            return json_response(201, existing, HAL)

    def _custom_fields(self, account: Account, entity: str, request: HttpRequest) -> HttpResponse:
        """``GET /api/v4/<entity>/custom_fields``: ``limit`` (default 50, at most 250), ``page``; ``_page``,
        ``_page_count``, ``_links.next`` while a page follows (crm_platform/custom-fields)."""
        limit = int(request.arg("limit") or 50)
        if not 0 < limit <= 250:
            return _problem(400, "Bad Request", "limit must be between 1 and 250")
        page = max(1, int(request.arg("page") or 1))
        fields = account.custom_fields.get(entity, [])
        chunk = fields[(page - 1) * limit : page * limit]
        if not chunk:
            return HttpResponse(204)
        base = f"https://{account.subdomain}.amocrm.ru/api/v4/{entity}/custom_fields?limit={limit}"
        pages = -(-len(fields) // limit)
        links: dict[str, Any] = {"self": {"href": f"{base}&page={page}"}, "last": {"href": f"{base}&page={pages}"}}
        if page < pages:
            links["next"] = {"href": f"{base}&page={page + 1}"}
        body = {
            "_total_items": len(chunk),
            "_page": page,
            "_page_count": pages,
            "_links": links,
            "_embedded": {"custom_fields": chunk},
        }
        return json_response(200, body, HAL)

    def _unsorted_summary(self, account: Account, request: HttpRequest) -> HttpResponse:
        """``GET /api/v4/leads/unsorted/summary``: every talk on a lead counts as a chat that came into Unsorted at
        the talk's start (reference/amocrm-chats-events-dp.md A.3)."""
        since = int(request.arg("filter[created_at][from]") or 0)
        until = int(request.arg("filter[created_at][to]") or 2**62)
        with self.lock:
            chats = sum(1 for t in account.talks.values() if t["entity_id"] and since <= t["created_at"] <= until)
        categories = {"sip": {"total": 0}, "mail": {"total": 0}, "forms": {"total": 0}, "chats": {"total": chats}}
        body = {"total": chats, "accepted": 0, "declined": 0, "average_sort_time": 0, "categories": categories}
        return json_response(200, body, HAL)

    def _recorded_item(self, path: str) -> dict[str, Any] | None:
        recorded = self._recorded(path)
        if recorded is None:
            return None
        try:
            item = json.loads(recorded.body)
        except ValueError:
            return None
        return item if isinstance(item, dict) else None

    def _add_notes(self, account: Account, lead_id: int | None, request: HttpRequest) -> HttpResponse:
        try:
            notes = request.json()
        except ValueError:
            notes = None
        if not isinstance(notes, list) or not notes:
            return _problem(400, "Bad Request", "Request validation failed")
        with self.lock:
            created: list[dict[str, Any]] = []
            for note in notes:
                entity_id = lead_id if lead_id is not None else note.get("entity_id")
                if not isinstance(note, dict) or not isinstance(entity_id, int):
                    return _problem(400, "Bad Request", "Request validation failed")
                note_id = len(account.notes) + 1
                account.notes.append({"id": note_id, **note, "entity_id": entity_id})
                created.append({"id": note_id, "entity_id": entity_id, "request_id": str(len(created))})
        return json_response(200, {"_embedded": {"notes": created}}, HAL)

    def _recorded(self, path: str) -> HttpResponse | None:
        if self.data_dir is None:
            return None
        file = (self.data_dir / (path.lstrip("/") + ".json")).resolve()
        if not file.is_relative_to(self.data_dir.resolve()) or not file.is_file():
            return None
        body = file.read_bytes()
        try:
            json.loads(body)
        except ValueError:
            return HttpResponse(200, body, {"Content-Type": HAL})
        return HttpResponse(200, body, {"Content-Type": HAL})


def custom_field(field_id: int, name: str, kind: str, entity: str, code: str | None = None) -> dict[str, Any]:
    """A field as ``GET /api/v4/<entity>/custom_fields`` shows it (the documented example's keys)."""
    return {
        "id": field_id,
        "name": name,
        "type": kind,
        "account_id": 0,
        "code": code,
        "sort": 500,
        "is_api_only": False,
        "enums": None,
        "group_id": None,
        "required_statuses": [],
        "is_deletable": code is None,
        "is_predefined": code is not None,
        "entity_type": entity,
        "remind": None,
        "settings": None,
        "_links": {"self": {"href": f"/api/v4/{entity}/custom_fields/{field_id}"}},
    }


def pipeline(pipeline_id: int, name: str, main: bool = False) -> dict[str, Any]:
    """A pipeline with amoCRM's system statuses (Unsorted first, then 142 won and 143 lost) and one of its own."""
    statuses = [
        (pipeline_id * 10 + 1, "Неразобранное", 10, 1),
        (pipeline_id * 10 + 2, "Первичный контакт", 20, 0),
        (142, "Успешно реализовано", 10000, 0),
        (143, "Закрыто и не реализовано", 11000, 0),
    ]
    return {
        "id": pipeline_id,
        "name": name,
        "sort": 1,
        "is_main": main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": 0,
        "_embedded": {
            "statuses": [
                {
                    "id": sid,
                    "name": sname,
                    "sort": sort,
                    "is_editable": kind == 0,
                    "pipeline_id": pipeline_id,
                    "type": kind,
                }
                for sid, sname, sort, kind in statuses
            ]
        },
    }


CHAT_EVENT_TYPES = {"incoming_chat_message", "outgoing_chat_message"}


def _filed_under(event: dict[str, Any]) -> tuple[str, str]:
    """The entity an event is filtered by. Chat events come back labelled with the talk's lead, but amoCRM files
    them under the contact (reference A.1): ``filter[entity]=lead`` never finds them, ``=contact`` does."""
    if event["type"] in CHAT_EVENT_TYPES:
        contact = event.get("_embedded", {}).get("entity", {}).get("linked_talk_contact_id")
        return "contact", str(contact or event["entity_id"])
    return str(event["entity_type"]), str(event["entity_id"])
