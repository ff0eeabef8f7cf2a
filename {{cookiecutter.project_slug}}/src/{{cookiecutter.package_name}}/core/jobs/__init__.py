"""Background jobs on Dramatiq and Redis: the broker every job is declared on (broker.py), the
schedule entries the clock fires (schedule.py), queue depths and dead letters (queues.py)."""
