"""Shared pytest configuration. Fixture modules are registered as plugins, one line each."""

pytest_plugins = ["receivers", "venv_support"]
