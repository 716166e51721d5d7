"""rtrl.py (seed 001's Lemma 2 and Theorem 1) against torch.func.jacrev of a hand-written unroll with
respect to W_hh (flattened row-major), and HV against its definition entry by entry."""

import pytest
import torch

import rnnscope as rs

F64 = torch.float64
ACTS = ["sigmoid", "tanh", "relu", "identity"]
PHI = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}
T, D = 5, 2


def _problem(form, act, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n, n, generator=g, dtype=F64) * (1.1 / n**0.5)
    U = torch.randn(n, D, generator=g, dtype=F64)
    b = torch.randn(n, generator=g, dtype=F64) * 0.3
    x = torch.randn(T, D, generator=g, dtype=F64)
    h0 = torch.randn(n, generator=g, dtype=F64) * 0.5
    cls = rs.ElmanCell if form == "elman" else rs.PalCell
    return cls(W, U, b, act), W, U, b, x, h0


def _reference(form, act, W, U, b, x, h0):
    """dh_t/dW_hh (T, n, n^2) by torch.func.jacrev of a hand-written unroll (nothing from rnnscope)."""
    phi = PHI[act]

    def states(Wv):
        h, out = h0, []
        for t in range(x.shape[0]):
            h = phi(Wv @ h + U @ x[t] + b) if form == "elman" else Wv @ phi(h) + U @ x[t] + b
            out.append(h)
        return torch.stack(out)  # (T, n)

    J = torch.func.jacrev(states)(W)  # (T, n, n, n): [t, i, a, b] = dh_t[i] / dW[a, b]
    n = W.shape[0]
    return J.reshape(x.shape[0], n, n * n)  # column a * n + b: row-major flattening


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("form", ["elman", "pal"])
@pytest.mark.parametrize("act", ACTS)
def test_lemma2_and_theorem1_equal_jacrev(act, form, n):
    cell, W, U, b, x, h0 = _problem(form, act, n)
    ref = _reference(form, act, W, U, b, x, h0)
    assert ref.abs().max() > 0.05
    L = rs.lemma2(cell, x, h0)
    assert L.shape == (T, n, n * n)
    torch.testing.assert_close(L, ref, rtol=1e-12, atol=1e-12)
    for t in range(1, T + 1):
        torch.testing.assert_close(rs.theorem1(cell, x, t=t, h0=h0), ref[t - 1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rs.theorem1(cell, x, h0=h0), ref[-1], rtol=1e-12, atol=1e-12)  # t = T default


@pytest.mark.parametrize("form", ["elman", "pal"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_theorem1_literal_hv_is_wrong_for_n_above_one_and_right_for_n_one(act, form):
    cell, W, U, b, x, h0 = _problem(form, act, 3, seed=1)
    ref = _reference(form, act, W, U, b, x, h0)[-1]
    literal = rs.theorem1(cell, x, h0=h0, hv_form="literal")
    err = float(torch.linalg.matrix_norm(literal - ref) / torch.linalg.matrix_norm(ref))
    assert err > 0.5  # the seed's HV (every block v^T) is off by more than the gradient itself
    cell1, W1, U1, b1, x1, h01 = _problem(form, act, 1, seed=1)
    ref1 = _reference(form, act, W1, U1, b1, x1, h01)[-1]
    torch.testing.assert_close(rs.theorem1(cell1, x1, h0=h01, hv_form="literal"), ref1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_hv_equals_kron_and_its_definition(n):
    v = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=F64)
    I = torch.eye(n, dtype=F64)
    torch.testing.assert_close(rs.hv(v), torch.kron(I, v.unsqueeze(0)), rtol=0, atol=0)
    torch.testing.assert_close(rs.hv(v, literal=True), torch.kron(torch.ones(n, n, dtype=F64), v.unsqueeze(0)),
                               rtol=0, atol=0)
    # the immediate partial of (W v)[i] with respect to W[a, b] is delta_{ia} v_b (column a * n + b)
    ref = torch.zeros(n, n * n, dtype=F64)
    for i in range(n):
        for b in range(n):
            ref[i, i * n + b] = v[b]
    torch.testing.assert_close(rs.hv(v), ref, rtol=0, atol=0)
    torch.testing.assert_close(rs.hv(v), torch.func.jacrev(lambda M: M @ v)(torch.zeros(n, n, dtype=F64)).reshape(n, n * n),
                               rtol=0, atol=0)


def test_errors_raise_input_error():
    cell, W, U, b, x, h0 = _problem("pal", "tanh", 3)
    g = torch.Generator().manual_seed(2)
    lstm = rs.LSTMCell(torch.randn(8, D, generator=g, dtype=F64), torch.randn(8, 2, generator=g, dtype=F64),
                       torch.zeros(8, dtype=F64), torch.zeros(8, dtype=F64))
    big = rs.ElmanCell(torch.zeros(65, 65, dtype=F64), torch.zeros(65, D, dtype=F64), torch.zeros(65, dtype=F64))
    cases = [
        lambda: rs.lemma2(lstm, x),
        lambda: rs.theorem1(lstm, x),
        lambda: rs.lemma2(big, x),
        lambda: rs.lemma2(cell, torch.zeros(T, 2, D, dtype=F64)),  # a batch, not one sequence
        lambda: rs.theorem1(cell, torch.zeros(T, 2, D, dtype=F64)),
        lambda: rs.theorem1(cell, x, t=0),
        lambda: rs.theorem1(cell, x, t=T + 1),
        lambda: rs.theorem1(cell, x, hv_form="transposed"),
    ]
    for make in cases:
        with pytest.raises(rs.InputError, match="expected"):
            make()
