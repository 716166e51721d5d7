"""The command line `rnnscope`: parses, calls the library, prints. Its 17 commands (theory is meanfield's
former name, kept as an alias):

    rnnscope profile  [--cell elman|pal|lstm|gru|lru|mingru|minlstm|mamba|slstm|indrnn|cornn|exprnn]
                      [--activation sigmoid|tanh|relu|identity]
                      [--hidden S --input-size D --gain g --init normal|orthogonal|identity --seed N]
                      [--r-min R --r-max R] [--cell-option KEY=VALUE ...]
                      [--weights W.npz] [--inputs X.npy | --length T --batch B --input-scale X]
                      [--h0 zeros|random|H.npy --h0-scale X] [--t t] [--dtype float64|float32] [--json]
                      [--plot FILE.png|.svg|.pdf]
    rnnscope bptt     --cell elman|pal --activation ... --weights W.npz --inputs X.npy --targets Y.npy
                      [--head mse|ce] [--loss-at all|last] [--h0 H.npy] [--json]
    rnnscope lyapunov [the model options of profile; autonomous: --h0 random by default] [--k K] [--every N]
                      [--warmup N] [--blocks N] [--json]
    rnnscope meanfield --sigma-w X --sigma-b Y [--activation tanh] [--json]       (alias: rnnscope theory)
    rnnscope memory   [--lambdas 0.5,0.9,0.99,0.999] [--rho RHO] [--sequences N] [--seed N] [--theta THETA]
                      [--burn-in X] [--plot FILE.png] [--json]
    rnnscope phase    [--sigma-w 0.5:3:40 --sigma-b 0:1:40 --hidden S --length T --seeds K | --spec FILE.toml]
                      [--db FILE] [--workers N | --scheduler tcp://HOST:PORT] [--retry-failed] [--plot FILE] [--json]
                      [--quiet]
    rnnscope sweep    SPEC.toml [--db FILE] [--workers N | --scheduler URL] [--retry-failed] [--json] [--quiet]
    rnnscope results  --db FILE [--json | --csv] [--sweep NAME]
    rnnscope tasks sample --task NAME --length L [--n N] [--seed S] --out FILE.npz
    rnnscope train    --task NAME --length L | --length-range MIN:MAX [--cell --activation --hidden --init --optimizer
                      --lr --batch --steps] [--clip-norm C | --clip-value C | --clip-adaptive X] [--regularizer-alpha A]
                      [--seed S] [--eval-every N --eval-size N] [--criterion lenient|pascanu] [--log-dir DIR]
                      [--db FILE] [--json] [--quiet]
    rnnscope study    NAME [--workers N | --scheduler URL] [--db FILE] [--quick | --faithful] [--plot FILE] [--json]
                      [--quiet]
    rnnscope claims   [--only ID[,ID...]] [--json]
    rnnscope reproduce SEED|all [--out DIR] [--json]
    rnnscope demo     [--out DIR] [--quick] [--quiet]
    rnnscope serve    [--host 127.0.0.1] [--port 8765] [--open] [--report DIR] [--workers N]
    rnnscope diagnose MODEL.pt --inputs X.npy [--targets Y.npy] [--loss mse|ce] [--arch SPEC] [--trust]
                      [--jacobian-sequences N] [--json] [--plot FILE]

Human-readable tables by default (rich), the same data as one JSON object with --json. Errors: bad input of any
kind gives one line on stderr, `rnnscope <command>: error: <what was expected>, got <what arrived>`, and exit
code 2; anything unexpected one line and exit code 1; never a traceback (entry.py). Progress (train, study, sweep,
phase): a bar on stderr whatever the output format, only when stderr is a terminal and without --quiet
(options.progress_enabled, from runs.progress).

The modules, one per command group: entry (the app, `main`, the error lines), options (the option parsers, the
shared option types, the model block of profile and lyapunov), output (JSON and table helpers), gradients
(profile, bptt, lyapunov), dynamics (meanfield, phase, memory, sweep, results), lab (tasks, train, study), seeds (claims,
reproduce), showcase (demo, serve), diagnose.

Example (sigma_w = 0.5, sigma_b = 0: q* = 0 and chi_1 = sigma_w^2 phi'(0)^2 = 0.25, the ordered phase):
    >>> main(["meanfield", "--sigma-w", "0.5", "--json"])  # doctest: +ELLIPSIS
    {"activation": "tanh", "sigma_w": 0.5, "sigma_b": 0.0, "q_star": 0.0, "chi1": 0.25, ...}
    0
    >>> len(COMMANDS), COMMANDS[:4]
    (17, ('profile', 'bptt', 'lyapunov', 'meanfield'))
"""

from __future__ import annotations

# each module registers its commands on `app` when imported; this order is the order of `rnnscope --help`
from . import gradients, dynamics, lab, seeds, showcase, diagnose  # noqa: F401, I001
from .entry import COMMANDS, app, main

__all__ = ["app", "main", "COMMANDS"]
