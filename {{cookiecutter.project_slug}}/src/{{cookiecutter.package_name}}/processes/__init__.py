"""The process types' entry points (the Procfile's commands) and the web's app: each
checks its settings before it imports the rest."""
