"""The package version, from one place (pyproject.toml's version)."""

__version__ = "15.0.0.dev0"
