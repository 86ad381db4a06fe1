"""Fixtures of the pldsl tests (the repository root is made importable by tests/conftest.py)."""
