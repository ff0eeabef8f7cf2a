"""Example feature: notes, stored in PostgreSQL, writes rate-limited through Redis.

Tables in models.py, bodies in schemas.py, every query in service.py, HTTP in routes.py, jobs
and their schedule in tasks.py (docs/extending.md). To start from a clean slate, delete this
folder, its imports and entries in features/__init__.py, and its migrations.
"""
