"""The integrations API (ASGI via Mangum): settings, status, backfills, the chat channel, the site script. May import every lower flow."""
