"""API Gateway HTTP API (payload v2) events in and out: just enough to keep handlers to one call each."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

JSON_HEADERS = {"content-type": "application/json; charset=utf-8", "cache-control": "no-store"}
HTML_HEADERS = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}


def body_bytes(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            return b""
    return body.encode("utf-8", "surrogatepass")


def path_param(event: dict[str, Any], name: str) -> str:
    params = event.get("pathParameters") or {}
    value = params.get(name, "") if isinstance(params, dict) else ""
    return value if isinstance(value, str) else ""


def header(event: dict[str, Any], name: str) -> str:
    """A request header (HTTP API lower-cases their names); empty when absent."""
    headers = event.get("headers") or {}
    value = headers.get(name.lower(), "") if isinstance(headers, dict) else ""
    return value[:200] if isinstance(value, str) else ""


def query_params(event: dict[str, Any]) -> dict[str, str]:
    params = event.get("queryStringParameters") or {}
    return (
        {k: v for k, v in params.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(params, dict)
        else {}
    )


def public_base_url(event: dict[str, Any], configured: str) -> str:
    """The origin CRMs and browsers reach this API at: the configured one (a custom domain), else the request's.

    A function behind the API cannot be told the API's URL by the template (the API refers to the function: a
    cycle), but every request names the domain it came to and the stage.
    """
    if configured:
        return configured.rstrip("/")
    context = event.get("requestContext") or {}
    domain = context.get("domainName") if isinstance(context, dict) else None
    stage = context.get("stage") if isinstance(context, dict) else None
    if not isinstance(domain, str) or not domain:
        raise ValueError("the request names no domain and PUBLIC_BASE_URL is not set")
    suffix = f"/{stage}" if isinstance(stage, str) and stage and stage != "$default" else ""
    return f"https://{domain}{suffix}"


def json_response(status: int, body: object) -> dict[str, Any]:
    return {"statusCode": status, "headers": JSON_HEADERS, "body": json.dumps(body, ensure_ascii=False)}


def html_response(status: int, html: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": HTML_HEADERS, "body": html}
