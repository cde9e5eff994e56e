"""The channel amoCRM registered for the service: its id, code, secret and bot, from Secrets Manager.

The secret holds JSON ``{"channel_id", "channel_code", "secret", "bot_id"}``. The stack creates it with a random
placeholder and no channel id: until an operator puts the registered values in, the channel is "not configured"
and connecting an integration says so. Only the secret is secret; nothing per account is.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import NamedTuple

UUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
CODE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
REREAD_SECONDS = 300  # a rotated secret reaches every environment within minutes


class ChannelNotConfigured(RuntimeError):
    pass


class ChannelCredentials(NamedTuple):
    channel_id: str
    channel_code: str
    secret: str
    bot_id: str

    @classmethod
    def parse(cls, raw: str) -> ChannelCredentials:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ChannelNotConfigured("the chat channel secret is not JSON") from exc
        if not isinstance(data, dict):
            raise ChannelNotConfigured("the chat channel secret is not a JSON object")
        channel_id, code = str(data.get("channel_id") or ""), str(data.get("channel_code") or "")
        secret, bot_id = str(data.get("secret") or ""), str(data.get("bot_id") or "")
        if not UUID.match(channel_id) or not CODE.match(code):
            raise ChannelNotConfigured("no chat channel is configured (channel_id, channel_code)")
        if not secret or not secret.isascii() or not secret.isprintable():
            raise ChannelNotConfigured("the chat channel secret must be the ASCII secret amoCRM issued")
        return cls(channel_id=channel_id, channel_code=code, secret=secret, bot_id=bot_id)

    def __repr__(self) -> str:  # never the secret, whatever prints it
        return f"ChannelCredentials(channel_id={self.channel_id!r}, channel_code={self.channel_code!r})"


class CredentialsSource:
    """Reads the secret once and again every few minutes (never per request), "not configured" included: that is
    the default after a deploy, and every amoCRM lead asks."""

    def __init__(self, read: Callable[[], str], clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.clock = clock
        self._cached: tuple[float, ChannelCredentials | str] | None = None  # a str: why it is not configured

    def get(self) -> ChannelCredentials:
        now = self.clock()
        if self._cached is None or now - self._cached[0] > REREAD_SECONDS:
            try:
                self._cached = (now, ChannelCredentials.parse(self.read()))
            except ChannelNotConfigured as exc:
                self._cached = (now, str(exc))
        found = self._cached[1]
        if isinstance(found, str):
            raise ChannelNotConfigured(found)
        return found
