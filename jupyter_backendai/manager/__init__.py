"""The manager service: the REST API for folders, transfers, sessions, resources and administration."""
