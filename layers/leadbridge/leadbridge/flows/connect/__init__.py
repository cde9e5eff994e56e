"""Connecting an integration: the authorize URL, its signed state, the OAuth callback and its pages. May import flows.worker (parking)."""
