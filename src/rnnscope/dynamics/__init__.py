"""dynamics: random RNNs as dynamical systems: mean-field theory and measured phase diagrams.
May import: core, gradients
"""
