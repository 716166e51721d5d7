"""dynamics: random RNNs as dynamical systems: mean-field theory, measured phase diagrams, the curse of memory.
May import: core, gradients
"""
