"""app: what users touch: the command line, the demo, the explorer and its web server. It parses, calls the library and presents.
May import: core, gradients, dynamics, runs, seeds, interop, lab
"""
