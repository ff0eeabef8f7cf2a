"""Database layer: table declarations, the web's asyncpg pool, the blocking engine, migrations."""

# How this service's connections name themselves in pg_stat_activity: the web's plain, the other
# process types' with a suffix (application_name("worker")).
APPLICATION_NAME = "{{ cookiecutter.project_slug }}"


def application_name(process: str | None = None) -> str:
    """The application_name of a process type's connections."""
    return f"{APPLICATION_NAME}-{process}" if process else APPLICATION_NAME
