"""interop: the boundary to a user's PyTorch model: torch modules as cells, diagnose, the training monitor.
May import: core, gradients
"""
