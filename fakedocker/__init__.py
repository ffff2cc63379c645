"""fakedocker: an in-memory Docker engine (work in progress)."""
