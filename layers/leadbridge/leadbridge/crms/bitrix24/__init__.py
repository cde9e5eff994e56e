"""Bitrix24: webhook parsing (events), REST client and its refusals, OAuth, enrichment, rebuilt webhooks (recovered), transcripts. Knows nothing of amoCRM."""
