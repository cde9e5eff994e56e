"""The generated site scripts in headless Chromium, on local pages with a stub counter and stub CRM widgets."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from leadbridge.contract.integration import Integration
from leadbridge.flows.api.site_script import site_script
from leadbridge_local.loopback import HttpRequest, HttpResponse, LoopbackServer

PAGES = Path(__file__).parent / "pages"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (CI installs it)")

AMO = Integration(integration_id="amo", crm="amocrm", crm_domain="shop.amocrm.ru")
B24 = Integration(integration_id="b24", crm="bitrix24", crm_domain="shop.bitrix24.ru")


def render(page: str, integration: Integration, tmp_path: Path) -> dict[str, str]:
    """Serve the page and the integration's script on loopback; return the attributes the page recorded."""

    def app(request: HttpRequest) -> HttpResponse:
        if request.path == "/site-script.js":
            return HttpResponse(200, site_script(integration).encode(), {"Content-Type": "text/javascript"})
        return HttpResponse(200, (PAGES / page).read_bytes(), {"Content-Type": "text/html; charset=utf-8"})

    server = LoopbackServer(app, name="pages").start()
    try:
        dom = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                f"{server.origin}/{page}",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        ).stdout
    finally:
        server.stop()
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag is not None, dom[:500]
    return {k: v.replace("&quot;", '"') for k, v in re.findall(r'(data-[a-z-]+)="([^"]*)"', html_tag.group(0))}


def test_bitrix24_widget_gets_the_session_even_when_the_counter_is_late(tmp_path: Path) -> None:
    recorded = render("bitrix24_late_counter.html", B24, tmp_path)
    assert "data-errors" not in recorded
    assert json.loads(recorded["data-received"]) == [{"MESSAGE": "leadbridge_session=2814407799"}]


def test_nothing_breaks_without_counter_or_widget(tmp_path: Path) -> None:
    recorded = render("bitrix24_nothing_loads.html", B24, tmp_path)
    assert recorded.get("data-done") == "yes"
    assert "data-errors" not in recorded
    assert "data-received" not in recorded


def test_amocrm_button_gets_bot_params_and_a_hashed_user_id(tmp_path: Path) -> None:
    recorded = render("amocrm_late_button.html", AMO, tmp_path)
    assert "data-errors" not in recorded
    assert json.loads(recorded["data-meta"]) == {"bot_params": {"leadbridge_session": "2814407731"}}
    assert recorded["data-user-id"] == hashlib.sha256(b"leadbridge:2814407731").hexdigest()
