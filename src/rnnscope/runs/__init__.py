"""runs: infrastructure for many runs: sweep specs, the task registry, the local or dask runner, the SQLite store, progress.
May import: core
"""
