"""core: the ground layer: activations, the cell contract and its cells, unroll, heads, building models, files, errors, results, figures.
May import: no other layer (core is the ground)
"""
