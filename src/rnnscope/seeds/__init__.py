"""seeds: the five seed documents made executable: their claims as experiments, counterexamples, reproductions of their figures, the report.
May import: core, gradients, dynamics
"""
