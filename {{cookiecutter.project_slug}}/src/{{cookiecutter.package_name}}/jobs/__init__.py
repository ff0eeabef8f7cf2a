"""Background jobs on Dramatiq and Redis.

Only the worker, the clock and admin commands import Dramatiq at start-up; the web process
imports it on its first enqueue (see queue.py), so web start-up does not pay for it.
"""
