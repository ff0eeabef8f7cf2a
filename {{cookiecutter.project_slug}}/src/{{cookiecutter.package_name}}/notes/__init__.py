"""Example feature: notes, stored in PostgreSQL, writes rate-limited through Redis.

Its background jobs (tasks.py) compute stats per note. To start from a clean slate, delete this
package, its line in api/router.py and db/models.py, its jobs in jobs/registry.py and in clock.py's
SCHEDULE, and its migrations.
"""
