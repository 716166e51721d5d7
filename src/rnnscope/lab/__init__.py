"""lab: training: the long-memory tasks, torch training networks, the remedies (clipping, regularizer, inits), train/fit, studies.
May import: core, gradients, runs, interop
"""
