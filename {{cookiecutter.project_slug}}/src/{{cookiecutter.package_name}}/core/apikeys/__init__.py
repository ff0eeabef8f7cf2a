"""API keys: who may call /api. Stored only as keyed digests; made and revoked by admin tasks."""
