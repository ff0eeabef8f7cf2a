"""The service's package: settings, app, process entry points and features."""
