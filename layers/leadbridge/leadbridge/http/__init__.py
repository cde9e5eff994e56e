"""HTTP to the CRMs: error classes, rate limiters, the shared client settings."""
