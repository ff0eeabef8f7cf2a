"""Example feature: notes, stored in PostgreSQL, writes rate-limited through Redis.

Delete this package, its line in api/router.py and its migration to start from a clean slate.
"""
