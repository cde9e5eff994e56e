"""Where a Salesbot's continue call may go: only the account's own ``/api/v4/{salesbot|marketingbot}/<bot>/continue/
<id>`` over https, because that request carries the integration's OAuth token (reference E.3)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from leadbridge.contract.integration import Integration

CONTINUE_PATH = re.compile(r"^/api/v4/(salesbot|marketingbot)/\d{1,20}/continue/[A-Za-z0-9_-]{1,100}$")


def continue_url_allowed(integration: Integration, url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and (parts.hostname or "") == integration.crm_domain.lower()
        and port in {None, 443}
        and not parts.query
        and not parts.fragment
        and not parts.username
        and bool(CONTINUE_PATH.match(parts.path))
    )
