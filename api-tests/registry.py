"""Fixtures for registry tests: a real docker-registry on 127.0.0.1 (filled in by the registry work)."""
