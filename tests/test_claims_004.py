"""claims_004 (seed 004_fafa8053bfab969c.txt): the ReLU example recomputed, and the LSTM's forget path against
torch.nn.LSTMCell and a tanh torch.nn.RNNCell with jacrev products over the full state (h, c).
"""

import math

import numpy as np
import pytest
import torch
from claims_reference import F64, claim_results, recompute_counterexample

from rnnscope.seeds import claims_004


@pytest.fixture(scope="module")
def results():
    return claim_results(c.id for c in claims_004.CLAIMS)


def test_relu_example_recomputes_and_vanishes(results):
    ev = results["004-relu-vanishing"].evidence
    ex = ev["example"]
    ref, _ = recompute_counterexample(ex)  # relu'(a) by autograd: 1 for a > 0, 0 otherwise
    np.testing.assert_allclose(ref, ex["log10_norms"], atol=1e-6, rtol=0)
    assert np.linalg.svd(np.array(ex["W_hh"]), compute_uv=False)[0] > 1 and ref[0] < -3
    assert ev["vanishing_draws"] >= ev["draws"] // 2


def test_lstm_forget_path_independently_with_torch_lstmcell(results):
    """torch.nn.LSTMCell (forget-gate bias +3) against a tanh RNN of the same size: products of jacrev Jacobians
    over the full state (h, c) keep the LSTM's flow over 150 steps while the tanh RNN's vanishes."""
    torch.manual_seed(0)
    H, T = 16, 150
    lstm = torch.nn.LSTMCell(1, H).double()
    with torch.no_grad():
        lstm.bias_hh[H:2 * H] += 3.0  # PyTorch gate order (i, f, g, o)
    rnn = torch.nn.RNNCell(1, H, nonlinearity="tanh").double()
    x = torch.randn(T, 1, dtype=F64)

    def lstm_step(s, xt):
        h, c = lstm(xt.unsqueeze(0), (s[:H].unsqueeze(0), s[H:].unsqueeze(0)))
        return torch.cat([h[0], c[0]])

    def rnn_step(s, xt):
        return rnn(xt.unsqueeze(0), s.unsqueeze(0))[0]

    def log_product(step, s):
        P = torch.eye(s.shape[0], dtype=F64)
        with torch.no_grad():
            for t in range(T):
                P = torch.func.jacrev(step)(s, x[t]) @ P
                s = step(s, x[t])
        return math.log10(float(torch.linalg.svdvals(P)[0]))
    lstm_log = log_product(lstm_step, torch.zeros(2 * H, dtype=F64))
    rnn_log = log_product(rnn_step, torch.zeros(H, dtype=F64))
    assert lstm_log > -3 and rnn_log < -8 and lstm_log > rnn_log + 5
    ev = results["004-lstm"].evidence
    assert ev["lstm_log10_norm_first"] > ev["elman_log10_norm_first"] + 10 and ev["lstm_large_weights_log10_norm_first"] > 0
