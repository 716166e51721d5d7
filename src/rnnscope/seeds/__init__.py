"""seeds: the five seed documents made executable: their claims as experiments (claims_000 .. claims_004, one registry), counterexamples, reproductions of their figures, the report.
May import: core, gradients, dynamics
"""
