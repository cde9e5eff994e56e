"""DynamoDB access: integrations and their tokens, the lead ledger, backfills, parked events. The flows see the classes' methods only. May import contract/, http/ and aws/."""
