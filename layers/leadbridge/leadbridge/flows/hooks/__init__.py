"""The request path: authenticate, parse, enqueue, answer within the sender's budget. Never calls a CRM."""
