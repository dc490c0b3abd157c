"""File-drop sensors (simulation requests, new experimental files, ...)."""

SENSORS: list = []
