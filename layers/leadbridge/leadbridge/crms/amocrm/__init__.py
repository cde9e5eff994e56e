"""amoCRM: webhook parsing (events), REST client, OAuth, enrichment, rebuilt webhooks (recovered), Salesbot and the digital pipeline. Knows nothing of Bitrix24."""
