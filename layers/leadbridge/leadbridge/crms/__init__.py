"""The CRMs: their wire formats, the token provider both share, and the enrichment contract the worker drives. May import contract/, http/ and aws/."""
