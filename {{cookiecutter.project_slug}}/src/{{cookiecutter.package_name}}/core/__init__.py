"""What every process and feature builds on: settings, logs, start-up, the database, jobs,
HTTP and observability."""
