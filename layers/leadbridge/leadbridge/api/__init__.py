"""The integrations API (ASGI): what the cabinet uses to set an integration up."""
