"""runs: infrastructure for many runs: sweep specs, the local or dask runner, the SQLite store, progress bars.
May import: core
"""
