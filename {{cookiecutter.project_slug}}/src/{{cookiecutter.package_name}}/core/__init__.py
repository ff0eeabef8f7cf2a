"""What every process and feature builds on: settings, logs, start-up, the database, jobs,
{%- if cookiecutter.observability %}
HTTP and observability."""
{%- else %}
and HTTP."""
{%- endif %}
