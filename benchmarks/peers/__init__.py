"""Drivers that run the benchmark programs under other Python tools, each in its own venv.

The files here are executed by those venvs' interpreters, never imported by interleave.
"""
