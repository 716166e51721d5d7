"""interop: the boundary to a user's PyTorch model: torch modules as cells, diagnose (per-layer flow, verdicts), the monitor.
May import: core, gradients
"""
