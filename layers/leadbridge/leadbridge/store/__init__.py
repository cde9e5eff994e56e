"""DynamoDB access: integrations and their tokens, and the lead ledger. The domain sees the interfaces only."""
