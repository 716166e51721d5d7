"""gradients: what flows backward through an unrolled cell: hand BPTT, the adjoint sweep, Jacobian-product profiles, RTRL, bounds and verdicts, Lyapunov spectra.
May import: core
"""
