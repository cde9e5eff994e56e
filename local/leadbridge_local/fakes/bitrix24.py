"""A fake Bitrix24 portal and OAuth server, as strict as the real ones (reference/bitrix24.md).

- REST at ``https://<portal>/rest/<method>`` with ``auth`` in the query, a form or a JSON body. Every answer has a
  ``time`` block. Methods: crm.lead.get, crm.deal.get, crm.contact.get, crm.lead.list, crm.deal.list,
  crm.activity.list, imopenlines.crm.chat.get, imopenlines.session.history.get, and ``batch`` (at most 50
  commands, ``$result[key][field]...`` references, ``halt``; a batch is one request for the limit).
- Limits: a leaky bucket per portal (+1 per HTTP request, drains 2/s, more than 50 -> ``503 QUERY_LIMIT_EXCEEDED``;
  Enterprise 5/250), and the per-method operating-time limit (``429 OPERATION_TIME_LIMIT``).
- OAuth: ``GET https://oauth.bitrix.info/oauth/token/``; codes live 30 s, refresh tokens are single-use, access
  tokens expire after an hour (``401 expired_token``).
- Not found: ``{"error": "", "error_description": "Not found"}`` with HTTP 400, in batches in ``result_error``.
- ``data_dir``: recorded results, ``<dir>/<method>/<id>.json`` (the ``result`` of that call for that id;
  ``crm.activity.list/<owner type id>-<owner id>.json``), served for direct calls and inside ``batch``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from leadbridge.crms.formdata import split_key
from leadbridge_local.fakes.base import FakeClock, FakeCrmBase, json_response, remember_secret
from leadbridge_local.loopback import HttpRequest, HttpResponse

CODE_TTL = 30
ACCESS_TTL = 3600
OAUTH_HOSTS = frozenset({"oauth.bitrix.info", "oauth.bitrix24.tech"})
OWNER_TYPES = {"1": "lead", "2": "deal", "3": "contact"}
# Events an application may bind that the tests use (api-reference/crm/leads/events, .../deals/events, common/events).
BINDABLE_EVENTS = frozenset({"ONCRMLEADADD", "ONCRMDEALADD", "ONCRMLEADUPDATE", "ONCRMDEALUPDATE", "ONAPPUNINSTALL"})


@dataclass
class Portal:
    domain: str
    member_id: str
    enterprise: bool = False
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    deals: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    histories: dict[int, dict[str, Any]] = field(default_factory=dict)
    bucket: float = 0.0
    bucket_at: float = field(default_factory=time.time)
    operating: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    denied: set[int] = field(default_factory=set)  # entities the token's user may not read
    history_denied: set[int] = field(default_factory=set)  # sessions the token's user may not open
    broken: set[int] = field(default_factory=set)  # entities whose read fails with an error no retry mends
    scopes: set[str] = field(default_factory=lambda: {"crm", "imopenlines", "im", "contact_center"})
    # A portal-wide refusal of every REST call (status, code, description), e.g. the free plan's 403.
    refusal: tuple[int, str, str] | None = None
    renamed_to: str | None = None  # the old address of a renamed portal answers REST with a 302 to the new one
    bindings: list[dict[str, Any]] = field(default_factory=list)  # event.bind / event.get / event.unbind
    admin_grant: bool = True  # the token's user is an admin (event.bind of offline handlers needs one)
    filter_zone: timezone | None = None  # a portal that reads list filters' stamps in its own zone, offsets ignored
    unpaid: bool = False  # the application's subscription lapsed: refreshes answer PAYMENT_REQUIRED, tokens kept
    # The pickers' lists (b24restdocs: crm userfield lists, imopenlines config, imconnector, crm.category / status).
    userfields: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"lead": [], "deal": []})
    open_lines: list[dict[str, Any]] = field(default_factory=lambda: [{"ID": "1", "LINE_NAME": "Open Channel"}])
    connectors: dict[str, str] = field(
        default_factory=lambda: {"livechat": "Live Chat", "telegrambot": "Telegram", "network": "Bitrix24.Network"}
    )
    connected: set[tuple[str, str]] = field(default_factory=lambda: {("1", "livechat"), ("1", "telegrambot")})
    connectors_denied: bool = False  # imconnector.list wants the right to change connectors
    categories: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": 0, "name": "General", "sort": 300, "entityTypeId": 2, "isDefault": "Y"}]
    )
    statuses: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            "STATUS": [_status("STATUS", "NEW", "Unassigned", 10), _status("STATUS", "CONVERTED", "Good lead", 60)],
            "DEAL_STAGE": [_status("DEAL_STAGE", "NEW", "New", 10), _status("DEAL_STAGE", "WON", "Deal won", 60)],
        }
    )

    @property
    def limits(self) -> tuple[float, float]:
        return (5.0, 250.0) if self.enterprise else (2.0, 50.0)


class FakeBitrix24(FakeCrmBase):
    def __init__(self, clock: FakeClock | None = None, data_dir: Path | None = None) -> None:
        super().__init__(clock)
        self.data_dir = data_dir
        self.portals: dict[str, Portal] = {}
        self.clients: dict[str, str] = {}
        self.codes: dict[str, tuple[str, str, float]] = {}  # code -> (domain, client_id, expires)
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (domain, expires)
        self.refresh_tokens: dict[str, tuple[str, str, bool]] = {}  # token -> (domain, client_id, used)
        self.operating_limit = 480.0  # seconds of one method's execution per 10 minutes, per application
        self.operating_cost = 0.05  # what one call of a method costs (a test raises it to reach the limit)

    # ------------------------------------------------------------------ seeding
    def add_portal(self, domain: str, member_id: str, enterprise: bool = False) -> Portal:
        with self.lock:
            return self.portals.setdefault(domain.lower(), Portal(domain.lower(), member_id, enterprise))

    def register_client(self, client_id: str, client_secret: str) -> None:
        self.clients[client_id] = remember_secret(client_secret)

    def issue_code(self, domain: str, client_id: str) -> str:
        code = remember_secret(secrets.token_hex(16))
        self.codes[code] = (domain.lower(), client_id, self.clock.now() + CODE_TTL)
        return code

    def issue_tokens(self, domain: str, client_id: str) -> dict[str, Any]:
        with self.lock:
            return self._pair(domain.lower(), client_id)

    def rename_portal(self, old: str, new: str) -> Portal:
        """The admin changes the portal's address: ``member_id`` and tokens stay, the old address redirects."""
        with self.lock:
            portal = self.portals[old.lower()]
            self.portals[new.lower()] = portal
            portal.renamed_to = new.lower()
            self.access_tokens = {
                t: (new.lower() if d == old.lower() else d, e) for t, (d, e) in self.access_tokens.items()
            }
            self.refresh_tokens = {
                t: (new.lower() if d == old.lower() else d, c, u) for t, (d, c, u) in self.refresh_tokens.items()
            }
            return portal

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens = {t: (d, 0.0) for t, (d, _) in self.access_tokens.items()}

    def add_activity(
        self,
        domain: str,
        owner_type: str,
        owner_id: int,
        session_id: int,
        connector: str,
        *,
        visible_after: float = 0.0,
        also_bound_to: tuple[tuple[str, int], ...] = (),
    ) -> None:
        portal = self.portals[domain.lower()]
        extra_bindings = [({"lead": "1", "deal": "2"}[kind], str(entity_id)) for kind, entity_id in also_bound_to]
        with self.lock:
            portal.activities.append(
                {
                    "ID": str(len(portal.activities) + 1),
                    "OWNER_TYPE_ID": {"lead": "1", "deal": "2"}[owner_type],
                    "OWNER_ID": str(owner_id),
                    "PROVIDER_ID": "IMOPENLINES_SESSION",
                    "PROVIDER_TYPE_ID": "1",
                    "ASSOCIATED_ENTITY_ID": str(session_id),
                    "PROVIDER_PARAMS": {"USER_CODE": f"{connector}|1|{session_id}|{owner_id}"},
                    "RESULT_SOURCE_ID": connector,
                    "DIRECTION": "1",
                    "COMPLETED": "N",
                    "CREATED": "2026-03-11T13:09:25+01:00",
                    "_visible_at": self.clock.now() + visible_after,
                    "_bindings": extra_bindings,  # besides its owner, which is always bound
                }
            )

    def add_open_lines_lead(
        self,
        domain: str,
        lead_id: int,
        *,
        connector: str = "telegrambot",
        created: str = "2026-03-11T12:20:00+03:00",
        activity_after: float = 0.0,
    ) -> None:
        """A lead as Open Lines creates it: IM multifield, its session activity and a one-message transcript."""
        portal = self.portals[domain.lower()]
        session = 10_000 + lead_id
        with self.lock:
            portal.leads[lead_id] = {
                "ID": str(lead_id),
                "NAME": "Клиент",
                "SOURCE_ID": "1|TELEGRAM",
                "DATE_CREATE": created,
                "PHONE": [{"VALUE": "+79261112233", "TYPE_ID": "PHONE"}],
                "IM": [{"VALUE": f"imol|{connector}|1|{lead_id}|88", "TYPE_ID": "IM"}],
            }
            portal.histories[session] = {
                "message": {
                    "1": {
                        "id": "1",
                        "senderid": "88",
                        "date": "2026-03-11T12:20:01+03:00",
                        "text": "Привет",
                        "params": {},
                    }
                },
                "users": {"88": {"id": "88", "connector": True}},
            }
        self.add_activity(domain, "lead", lead_id, session, connector, visible_after=activity_after)

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.host in OAUTH_HOSTS:
            return self._oauth(request)
        portal = self.portals.get(request.host)
        match = re.fullmatch(r"/rest/([a-z0-9_.]+?)(?:\.json)?/?", request.path)
        if portal is None or match is None:
            return json_response(404, {"error": "NOT_FOUND", "error_description": "Portal or method not found"})
        if portal.renamed_to is not None and request.host != portal.renamed_to:
            self.count("redirects")
            location = f"https://{portal.renamed_to}{request.path}"
            return HttpResponse(302, b"", {"Location": location})
        if portal.refusal is not None:
            self.count("refused")
            return self._error(*portal.refusal)
        params = self._params(request)
        with self.lock:
            if not self._bucket_admits(portal, request.arrived_at):
                self.count("limit_violations")
                return self.limit_error()
            token = params.pop("auth", "")
            grant = self.access_tokens.get(token if isinstance(token, str) else "")
            if grant is None or grant[0] != (portal.renamed_to or portal.domain):
                self.count("unauthorized")
                return self._error(401, "NO_AUTH_FOUND", "Wrong authorization data")
            if grant[1] < self.clock.now():
                self.count("unauthorized")
                return self._error(401, "expired_token", "The access token provided has expired.")
        self.count("api_requests")
        fault = self.injected_fault()
        if fault is not None:
            return fault
        method = match[1].lower()
        if method == "batch":
            return self._batch(portal, params)
        self.count(f"method:{method}")
        ok, value, total = self._call(portal, method, params)
        if not ok:
            self.count(f"refused:{value[1] or value[2]}")
            status, error, description = value
            return self._error(status, error, description)
        body: dict[str, Any] = {"result": value, "time": self._time(portal, method)}
        if total is not None:
            body["total"] = total
            shown = max(0, php_intval(params.get("start"))) + (len(value) if isinstance(value, list) else 0)
            if method in PAGED_METHODS and shown < total:
                body["next"] = shown
        return json_response(200, body)

    # ------------------------------------------------------------------ limits
    def _bucket_admits(self, portal: Portal, arrived_at: float) -> bool:
        drain, capacity = portal.limits
        portal.bucket = max(0.0, portal.bucket - max(0.0, arrived_at - portal.bucket_at) * drain)
        portal.bucket_at = max(portal.bucket_at, arrived_at)  # stamps may come a little out of order
        if portal.bucket + 1 > capacity:
            return False
        portal.bucket += 1
        return True

    def _time(self, portal: Portal, method: str, billed: bool = True) -> dict[str, Any]:
        """The answer's ``time`` block. Each method's execution time is billed to it (``operating``, over the last
        10 minutes); the outer ``batch`` call is not billed, its commands are (settings/performance/limits.md)."""
        now = self.clock.now()
        spent = portal.operating.setdefault(method, [])
        if billed:
            spent.append((now, self.operating_cost))
        while spent and now - spent[0][0] > 600:
            spent.pop(0)
        return {
            "start": now,
            "finish": now + 0.01,
            "duration": 0.01,
            "processing": self.operating_cost,
            "date_start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
            "date_finish": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
            "operating_reset_at": int((spent[0][0] if spent else now) + 600),
            "operating": sum(cost for _, cost in spent),
        }

    def _over_operating_limit(self, portal: Portal, method: str) -> bool:
        now = self.clock.now()
        return sum(cost for at, cost in portal.operating.get(method, []) if now - at <= 600) > self.operating_limit

    def limit_error(self) -> HttpResponse:
        return self._error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")

    def server_error(self) -> HttpResponse:
        return self._error(500, "INTERNAL_SERVER_ERROR", "Internal server error")

    @staticmethod
    def _error(status: int, error: str, description: str) -> HttpResponse:
        return json_response(status, {"error": error, "error_description": description})

    # ------------------------------------------------------------------ methods
    def _params(self, request: HttpRequest) -> dict[str, Any]:
        flat: list[tuple[str, str]] = [(k, v) for k, values in request.query.items() for v in values]
        content_type = request.headers.get("content-type", "")
        if request.body and "json" in content_type:
            try:
                data = request.json()
            except ValueError:
                data = None
            if isinstance(data, dict):
                return {**_nest(flat), **data}
        elif request.body:
            flat += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        return _nest(flat)

    def _call(self, portal: Portal, method: str, params: dict[str, Any]) -> tuple[bool, Any, int | None]:
        if self._over_operating_limit(portal, method):
            return False, (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."), None
        not_found = (400, "", "Not found")
        if method in {"crm.lead.get", "crm.deal.get", "crm.contact.get"}:
            if "crm" not in portal.scopes:
                return False, (403, "insufficient_scope", ""), None
            entity_id = php_intval(params.get("id", params.get("ID")))  # the CRM casts whatever it is given
            if entity_id <= 0:
                return False, (400, "", "ID is not defined or invalid."), None
            recorded = self._recorded(method, str(entity_id))
            if recorded is not None:
                return True, recorded, None
            if entity_id in portal.denied:
                return False, (400, "", "Access denied."), None
            if entity_id in portal.broken:
                return False, (400, "ERROR_CORE", "Could not read the entity"), None
            store = {"crm.lead.get": portal.leads, "crm.deal.get": portal.deals, "crm.contact.get": portal.contacts}[
                method
            ]
            entity = store.get(entity_id)
            return (True, entity, None) if entity is not None else (False, not_found, None)
        if method == "app.info":
            return True, {"ID": 1, "CODE": "leadbridge", "STATUS": "L", "INSTALLED": True}, None
        if method == "crm.activity.list":
            filters = params.get("filter") or {}
            if not isinstance(filters, dict):
                filters = {}
            owner_type, owner_id = str(filters.get("OWNER_TYPE_ID", "")), str(filters.get("OWNER_ID", ""))
            bindings = _bindings_filter(filters.get("BINDINGS"))
            recorded_key = f"{owner_type}-{owner_id}" if not bindings else "-".join(bindings[0])
            recorded = self._recorded(method, recorded_key)
            if recorded is not None:
                return True, recorded, len(recorded)
            now = self.clock.now()
            found = [
                {k: v for k, v in a.items() if not k.startswith("_")}
                for a in portal.activities
                if (not owner_type or a["OWNER_TYPE_ID"] == owner_type)
                and (not owner_id or a["OWNER_ID"] == owner_id)
                and (not bindings or any(_bound(a, pair) for pair in bindings))
                and a["PROVIDER_ID"] == filters.get("PROVIDER_ID", a["PROVIDER_ID"])
                and a["_visible_at"] <= now
            ]
            descending = str(as_map(params.get("order")).get("ID", "ASC")).upper() == "DESC"
            found.sort(key=lambda a: int(a["ID"]), reverse=descending)
            return True, found[:50], len(found)
        if method == "imopenlines.session.history.get":
            if "imopenlines" not in portal.scopes:
                return False, (403, "insufficient_scope", ""), None
            session = php_intval(params.get("SESSION_ID"))
            if session <= 0:
                return False, (400, "MISSING_REQUIRED_PARAM", "Session ID or Chat ID must be provided"), None
            if session in portal.history_denied:
                message = "You cannot open this conversation as you do not have sufficient rights"
                return False, (403, "ACCESS_DENIED", message), None
            recorded = self._recorded(method, str(session))
            if recorded is not None:
                return True, recorded, None
            history = portal.histories.get(session)
            if not history:
                return (
                    False,
                    (400, "INVALID_SESSION_ID", "Unable to determine session ID from provided parameters"),
                    None,
                )
            return True, {"sessionId": session, **history}, None
        if method in {"event.bind", "event.get", "event.unbind"}:
            return self._events_api(portal, method, params)
        if method in PICKER_METHODS:
            return self._pickers(portal, method, params)
        if method in {"crm.lead.list", "crm.deal.list"}:
            return True, *self._list(
                portal.leads if method == "crm.lead.list" else portal.deals, params, portal.filter_zone
            )
        return False, (404, "ERROR_METHOD_NOT_FOUND", "Method not found!"), None

    def _pickers(self, portal: Portal, method: str, params: dict[str, Any]) -> tuple[bool, Any, int | None]:
        """The lists the cabinet's pickers read, in the documented shapes: user fields in pages of 50 (labels per
        language unless ``filter[LANG]`` names one), open lines, connectors, a connector's status on a line, deal
        categories, and directory items by ``ENTITY_ID``."""
        scope = "imopenlines" if method.startswith(("imopenlines.", "imconnector.")) else "crm"
        if scope not in portal.scopes:
            return False, (403, "insufficient_scope", ""), None
        start = max(0, php_intval(params.get("start")))
        if method in {"crm.lead.userfield.list", "crm.deal.userfield.list"}:
            lang = str(as_map(params.get("filter")).get("LANG") or "")
            rows = [_labelled(row, lang) for row in portal.userfields[method.split(".")[1]]]
            recorded = self._recorded(method, "list")
            rows = recorded if isinstance(recorded, list) else rows
            return True, rows[start : start + 50], len(rows)
        if method == "imopenlines.config.list.get":
            recorded = self._recorded(method, "list")
            return True, recorded if isinstance(recorded, list) else [dict(line) for line in portal.open_lines], None
        if method == "imconnector.list":
            if portal.connectors_denied:
                return False, (400, "ACCESS_DENIED", "You don't have access to this action"), None
            recorded = self._recorded(method, "list")
            return True, recorded if isinstance(recorded, dict) else dict(portal.connectors), None
        if method == "imconnector.status":
            line, connector = str(params.get("LINE") or ""), str(params.get("CONNECTOR") or "")
            if not line or not connector:
                return False, (400, "ERROR_ARGUMENT", "LINE and CONNECTOR are required"), None
            recorded = self._recorded(method, f"{php_intval(line)}-{re.sub(r'[^a-z0-9_.]', '', connector.lower())}")
            if isinstance(recorded, dict):
                return True, recorded, None
            on = (line, connector) in portal.connected
            return (
                True,
                {"LINE": int(line), "CONNECTOR": connector, "ERROR": False, "CONFIGURED": on, "STATUS": on},
                None,
            )
        if method == "crm.category.list":
            if php_intval(params.get("entityTypeId")) != 2:
                return True, {"categories": []}, None
            recorded = self._recorded(method, "2")
            return True, recorded if isinstance(recorded, dict) else {"categories": list(portal.categories)}, 1
        entity_id = str(as_map(params.get("filter")).get("ENTITY_ID") or "")
        recorded = self._recorded(method, entity_id or "all")
        rows = (
            recorded
            if isinstance(recorded, list)
            else portal.statuses.get(entity_id, [])
            if entity_id
            else [row for rows in portal.statuses.values() for row in rows]
        )
        return True, rows, len(rows)

    @staticmethod
    def _events_api(portal: Portal, method: str, params: dict[str, Any]) -> tuple[bool, Any, int | None]:
        """``event.bind`` / ``event.get`` / ``event.unbind`` as documented (api-reference/events/*): a handler is an
        (event, handler URL) pair of this application; an unknown event is ``ERROR_EVENT_NOT_FOUND``."""
        if method == "event.get":
            found = [
                {"event": b["event"], "handler": b["handler"], "auth_type": "0", "offline": 0} for b in portal.bindings
            ]
            return True, found, None
        event = str(params.get("event") or params.get("EVENT") or "").upper()
        handler = str(params.get("handler") or params.get("HANDLER") or "")
        if method == "event.unbind":
            before = len(portal.bindings)
            portal.bindings = [
                b for b in portal.bindings if not (b["event"] == event and (not handler or b["handler"] == handler))
            ]
            return True, {"count": before - len(portal.bindings)}, None
        if event not in BINDABLE_EVENTS:
            return False, (400, "ERROR_EVENT_NOT_FOUND", "Event not found"), None
        if not handler.startswith(("https://", "http://")):
            return False, (400, "WRONG_HANDLER_URL", "Wrong handler URL"), None
        if not any(b["event"] == event and b["handler"] == handler for b in portal.bindings):
            portal.bindings.append({"event": event, "handler": handler})
        return True, True, None

    @staticmethod
    def _list(
        store: dict[int, dict[str, Any]], params: dict[str, Any], zone: timezone | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Pages of 50 in ID order; ``>=DATE_CREATE`` / ``<DATE_CREATE`` compare instants (any offset, or, with
        ``zone``, the stamp's wall time read in the portal's zone), ``>ID`` pages on by id; ``start=-1`` answers
        without the total (the count is what makes big lists slow)."""
        filters = params.get("filter") or {}
        since = _instant(str(filters.get(">=DATE_CREATE") or ""), zone)
        before = _instant(str(filters.get("<DATE_CREATE") or ""), zone)
        after_id = int(str(filters.get(">ID") or 0) or 0)

        def created(entity: dict[str, Any]) -> float | None:
            return _instant(str(entity.get("DATE_CREATE")))

        rows = sorted(
            (
                e
                for e in store.values()
                if int(e["ID"]) > after_id
                and (since is None or (created(e) or since) >= since)
                and (before is None or (created(e) or before) < before)
            ),
            key=lambda e: int(e["ID"]),
        )
        select = params.get("select") or []
        page = [{k: v for k, v in row.items() if not select or k in select} for row in rows[:50]]
        return page, (None if str(params.get("start")) == "-1" else len(rows))

    def _batch(self, portal: Portal, params: dict[str, Any]) -> HttpResponse:
        commands = params.get("cmd") or {}
        if not isinstance(commands, dict):
            return self._error(400, "INVALID_REQUEST", "cmd must be an object")
        if len(commands) > 50:
            return self._error(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", "0")).lower() in {"1", "true"}
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        times: dict[str, Any] = {}
        self.count("batch_calls")
        for key, command in commands.items():
            method, _, query = str(command).partition("?")
            method = method.lower()
            if method == "batch":
                errors[key] = {
                    "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "error_description": "Method not allowed in batch",
                }
                continue
            # Parsed first, then each value's ``$result[...]`` resolved as the platform does (batch_reference).
            resolved = batch_reference(_nest(parse_qsl(query, keep_blank_values=True)), results)
            self.count(f"method:{method}")
            ok, value, total = self._call(portal, method, resolved)
            if ok:
                times[key] = self._time(portal, method)
                results[key] = value
                if total is not None:
                    totals[key] = total
            else:
                self.count(f"refused:{value[1] or value[2]}")
                errors[key] = {"error": value[1], "error_description": value[2]}
                if halt:
                    break
        # PHP serializes an empty map as a JSON array: the real portal answers "result_error": [] when nothing failed.
        body = {
            "result": {
                "result": results or [],
                "result_error": errors or [],
                "result_total": totals or [],
                "result_next": [],
                "result_time": times or [],
            },
            "time": self._time(portal, "batch", billed=False),
        }
        return json_response(200, body)

    def _recorded(self, method: str, key: str) -> Any:
        if self.data_dir is None:
            return None
        file = (self.data_dir / method / f"{key}.json").resolve()
        if not file.is_relative_to(self.data_dir.resolve()) or not file.is_file():
            return None
        return json.loads(file.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ OAuth
    def _oauth(self, request: HttpRequest) -> HttpResponse:
        if request.path.rstrip("/") != "/oauth/token":
            return json_response(404, {"error": "not_found"})
        args = {k: v[0] for k, v in request.query.items()}
        self.count("token_requests")
        client_id = args.get("client_id", "")
        if self.clients.get(client_id) != args.get("client_secret"):
            return json_response(401, {"error": "invalid_client", "error_description": "Invalid client"})
        with self.lock:
            if args.get("grant_type") == "authorization_code":
                entry = self.codes.pop(args.get("code", ""), None)
                if entry is None or entry[2] < self.clock.now() or entry[1] != client_id:
                    return json_response(
                        400, {"error": "invalid_grant", "error_description": "Invalid authorization code"}
                    )
                return json_response(200, self._pair(entry[0], client_id))
            if args.get("grant_type") == "refresh_token":
                self.count("refresh_requests")
                found = self.refresh_tokens.get(args.get("refresh_token", ""))
                if found is None or found[2] or found[1] != client_id:
                    self.count("refresh_rejected")
                    return json_response(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
                portal = self.portals.get(found[0])
                if portal is not None and portal.unpaid:
                    return json_response(400, {"error": "PAYMENT_REQUIRED", "error_description": "Payment required"})
                self.refresh_tokens[args["refresh_token"]] = (found[0], found[1], True)
                return json_response(200, self._pair(found[0], client_id))
        return json_response(400, {"error": "invalid_request", "error_description": "Unknown grant_type"})

    def _pair(self, domain: str, client_id: str) -> dict[str, Any]:
        access = remember_secret(secrets.token_hex(16))
        refresh = remember_secret(secrets.token_hex(16))
        now = self.clock.now()
        self.access_tokens[access] = (domain, now + ACCESS_TTL)
        self.refresh_tokens[refresh] = (domain, client_id, False)
        portal = self.portals.get(domain)
        return {
            "access_token": access,
            "client_endpoint": f"https://{domain}/rest/",
            "domain": "oauth.bitrix.info",
            "expires": int(now + ACCESS_TTL),
            "expires_in": ACCESS_TTL,
            "member_id": portal.member_id if portal else "",
            "refresh_token": refresh,
            "scope": "crm,imopenlines,im,contact_center",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "user_id": 1,
        }


PICKER_METHODS = frozenset(
    {
        "crm.lead.userfield.list",
        "crm.deal.userfield.list",
        "imopenlines.config.list.get",
        "imconnector.list",
        "imconnector.status",
        "crm.category.list",
        "crm.status.list",
    }
)
PAGED_METHODS = frozenset({"crm.lead.userfield.list", "crm.deal.userfield.list"})
LABELS = ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL")


def _status(entity_id: str, status_id: str, name: str, sort: int) -> dict[str, Any]:
    return {"ID": str(sort), "ENTITY_ID": entity_id, "STATUS_ID": status_id, "NAME": name, "SORT": str(sort)}


def userfield(field_id: int, code: str, kind: str, label: str, entity: str = "lead") -> dict[str, Any]:
    """A user field as ``crm.<entity>.userfield.list`` shows it, its labels given in Russian and English."""
    labels = {"ru": label, "en": label}
    return {
        "ID": str(field_id),
        "ENTITY_ID": f"CRM_{entity.upper()}",
        "FIELD_NAME": code,
        "USER_TYPE_ID": kind,
        "XML_ID": None,
        "SORT": "100",
        "MULTIPLE": "N",
        "MANDATORY": "N",
        **{name: dict(labels) for name in LABELS},
    }


def _labelled(row: dict[str, Any], lang: str) -> dict[str, Any]:
    """Without ``filter[LANG]`` the labels come per language; with it, as that language's string."""
    if not lang:
        return dict(row)
    return {k: (v.get(lang, "") if k in LABELS and isinstance(v, dict) else v) for k, v in row.items()}


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """PHP-style keys (``filter[OWNER_ID]=1``, ``select[]=ID``) into nested values, as the portal reads them."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = split_key(key)
        node: Any = root
        for index, part in enumerate(path):
            last = index == len(path) - 1
            if isinstance(node, list):
                node.append(value if last else {})
                node = node[-1]
                continue
            if last:
                node[part] = value
                continue
            child = node.get(part)
            if not isinstance(child, dict | list):
                child = [] if path[index + 1] == "" else {}
                node[part] = child
            node = child
    return root


def _instant(value: str, zone: timezone | None = None) -> float | None:
    try:
        stamp = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if stamp is None:
        return None
    return (stamp.replace(tzinfo=zone) if zone is not None else stamp).timestamp()


REFERENCE = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")


def batch_reference(params: Any, results: dict[str, Any]) -> Any:
    """``$result[cmd][key]...`` in a batch command's parameters, resolved as Bitrix24's REST core does.

    The path is walked from the batch's results while each key is set (PHP ``isset``: a null or missing key stops
    the walk) and the deepest value reached is used: ``$result[e][CONTACT_ID]`` with ``CONTACT_ID: null`` gives the
    whole lead, and a failed command gives every result so far. A parameter that is one whole reference passes that
    value as it is (an array included); a reference inside a longer string is replaced by its text (an array by its
    values joined with commas).
    """
    if isinstance(params, dict):
        return {k: batch_reference(v, results) for k, v in params.items()}
    if isinstance(params, list):
        return [batch_reference(v, results) for v in params]
    if not isinstance(params, str) or "$result" not in params:
        return params
    whole = REFERENCE.fullmatch(params)
    if whole is not None:
        return _walk(results, whole)
    return REFERENCE.sub(lambda m: _as_text(_walk(results, m)), params)


def _walk(results: dict[str, Any], match: re.Match[str]) -> Any:
    value: Any = results
    for raw in [match[1], *re.findall(r"\[([^\]]*)\]", match[2])]:
        part = raw.strip("'\"")
        node = as_map(value) if isinstance(value, dict | list) else None
        if node is None or node.get(part) is None:
            break
        value = node[part]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(_as_text(v) for v in value.values())
    if isinstance(value, list):
        return ",".join(_as_text(v) for v in value)
    if value is True:
        return "1"
    if value is None or value is False:
        return ""
    return str(value)


def php_intval(value: Any) -> int:
    """PHP's ``intval``: an array is 1 when it is not empty, a string its leading integer, anything else 0."""
    if isinstance(value, dict | list):
        return 1 if value else 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    found = re.match(r"\s*([+-]?\d+)", str(value or ""))
    return int(found[1]) if found else 0


def as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _bindings_filter(value: Any) -> list[tuple[str, str]]:
    """``filter[BINDINGS]``: pairs of ``OWNER_TYPE_ID`` and (optionally) ``OWNER_ID``."""
    return [
        (str(item.get("OWNER_TYPE_ID", "")), str(item.get("OWNER_ID", "")))
        for item in as_map(value).values()
        if isinstance(item, dict)
    ]


def _bound(activity: dict[str, Any], pair: tuple[str, str]) -> bool:
    owner_type, owner_id = pair
    return any(
        (not owner_type or bound_type == owner_type) and (not owner_id or bound_id == owner_id)
        for bound_type, bound_id in [(activity["OWNER_TYPE_ID"], activity["OWNER_ID"]), *activity["_bindings"]]
    )
