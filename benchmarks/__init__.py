"""Benchmarks on a real Docker engine (see benchmarks/README.md).

Each module is also a script with a ``main(argv) -> dict`` entry point.
"""
