"""Background jobs on Dramatiq and Redis: jobs are declared in their feature (jobs/job.py),
declared as actors by the worker (registry.py), sent by the web (sender.py)."""
