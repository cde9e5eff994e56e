"""Adapters to AWS: queues, DynamoDB stores, configuration, metrics, API Gateway shapes, secrets. May import contract/ and http/."""
