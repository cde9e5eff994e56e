"""The per-integration script a customer pastes below the analytics counter on every page.

It waits (bounded) for the analytics session id from a configurable page function (by default the CoMagic
counter's ``Comagic.getSessionId``), then hands it to the CRM's chat widget:
- Bitrix24: on ``onBitrixLiveChat`` (or an already loaded ``window.BXLiveChat``) it calls
  ``widget.setCustomData([{MESSAGE: "leadbridge_session=<id>"}])``; Bitrix24 posts that into the chat as a system
  message, where the worker finds it.
- amoCRM: it sets a hashed ``amoSocialButtonConfig.onlinechat.user_id`` (when the button has not started yet) and
  ``amo_social_button.setMeta({bot_params: {leadbridge_session: <id>}})``; the online chat's bot writes
  ``{{bot_params.leadbridge_session}}`` into the custom field the integration reads (see the README).
Everything is wrapped in try/catch and gives up quietly: a missing counter or widget never breaks the page.
"""

from __future__ import annotations

import json

from leadbridge.contract.integration import Integration
from leadbridge.crms.bitrix24.transcript import SESSION_MARKER

_COMMON = """(function () {
  "use strict";
  if (window.__leadbridge) { return; }
  window.__leadbridge = true;
  var GETTER = %(getter)s, MARKER = %(marker)s, WAIT_MS = 60000, STEP_MS = 300;
  function read(path) {
    try {
      var parts = path.split("."), owner = window, i;
      for (i = 0; i < parts.length - 1; i++) { owner = owner && owner[parts[i]]; }
      var fn = owner && owner[parts[parts.length - 1]];
      var value = typeof fn === "function" ? fn.call(owner) : null;
      return value ? String(value) : null;
    } catch (e) { return null; }
  }
  function when(test, then) {
    var started = Date.now();
    (function poll() {
      var value;
      try { value = test(); } catch (e) { value = null; }
      if (value) { try { then(value); } catch (e) {} return; }
      if (Date.now() - started < WAIT_MS) { setTimeout(poll, STEP_MS); }
    })();
  }
  function session() { return read(GETTER); }
%(body)s
})();
"""

_BITRIX = """  function give(widget) {
    when(session, function (id) { widget.setCustomData([{ MESSAGE: MARKER + "=" + id }]); });
  }
  window.addEventListener("onBitrixLiveChat", function (event) {
    var widget = event && event.detail && event.detail.widget;
    if (widget && typeof widget.setCustomData === "function") { give(widget); }
  });
  if (window.BXLiveChat && typeof window.BXLiveChat.setCustomData === "function") { give(window.BXLiveChat); }
"""

_AMO = """  function hash(text, done) {
    try {
      var bytes = new TextEncoder().encode("leadbridge:" + text);
      window.crypto.subtle.digest("SHA-256", bytes).then(function (digest) {
        done(Array.prototype.map.call(new Uint8Array(digest), function (b) { return ("0" + b.toString(16)).slice(-2); }).join(""));
      }, function () {});
    } catch (e) {}
  }
  when(session, function (id) {
    var config = window.amoSocialButtonConfig;
    if (config && config.onlinechat && !config.onlinechat.user_id) {
      hash(id, function (digest) { config.onlinechat.user_id = digest; });
    }
    when(function () {
      var button = window.amo_social_button;
      return button && typeof button.setMeta === "function" ? button : null;
    }, function (button) {
      var params = {};
      params[MARKER] = id;
      button.setMeta({ bot_params: params });
    });
  });
"""


def site_script(integration: Integration) -> str:
    body = _AMO if integration.crm == "amocrm" else _BITRIX
    return _COMMON % {
        "getter": json.dumps(integration.session_getter),
        "marker": json.dumps(SESSION_MARKER),
        "body": body.rstrip("\n"),
    }
