"""lab: training: the long-memory tasks, the torch training networks, the remedies, fit/train (snapshot, criteria), studies.
May import: core, gradients, runs, interop
"""
