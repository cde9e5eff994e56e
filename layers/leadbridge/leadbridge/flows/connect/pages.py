"""The small HTML page the OAuth callback answers with: connected, or what went wrong and what to do.

It never contains a token, a code, a state or a secret, only fixed texts and the integration's own name.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    title: str
    message: str
    reason: str  # for logs and metrics

    def render(self) -> str:
        color = "#1b7f3b" if self.status < 400 else "#b3261e"
        return (
            "<!doctype html><html lang=ru><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(self.title)}</title>"
            "<body style='font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem'>"
            f"<h1 style='color:{color};font-size:1.4rem'>{html.escape(self.title)}</h1>"
            f"<p>{html.escape(self.message)}</p></body></html>"
        )


def connected(crm_label: str, integration_name: str) -> Page:
    return Page(
        200,
        f"{crm_label} подключена",
        f"Интеграция «{integration_name}» подключена. Окно можно закрыть: новые чаты начнут попадать в аналитику.",
        "connected",
    )


def failed(status: int, reason: str, message: str) -> Page:
    return Page(status, "Не удалось подключить CRM", message, reason)


RESTART = "Откройте настройки интеграции в кабинете и нажмите «Авторизоваться» ещё раз."
STATE_MESSAGES = {
    "expired": "Ссылка для авторизации устарела. " + RESTART,
    "already_used": "Эта ссылка для авторизации уже была использована. " + RESTART,
}
