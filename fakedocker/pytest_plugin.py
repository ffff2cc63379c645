"""pytest fixtures for fakedocker (work in progress)."""
