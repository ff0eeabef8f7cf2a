"""The web's HTTP pieces: middleware, errors, the API key check, probes, dependencies and
the backing services a web process holds."""
