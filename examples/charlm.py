"""A character-level language model trained on real English text, and the setup for `rnnscope diagnose`.

    python examples/charlm.py                          train it (about a minute on a laptop CPU), save charlm.pt
    rnnscope diagnose examples/charlm.py --plot lm.png diagnose the trained model with its own loss
    rnnscope diagnose examples/charlm.py:untrained     the same model at its initialisation

The text is the Python documentation that the standard library ships (pydoc_data.topics), split by a fixed
seed into training text (90%) and held-out text (10%); the model is nn.Embedding -> 2-layer nn.LSTM, hidden 128
-> nn.Linear, trained with Adam on windows of 100 characters, cross-entropy on the next character at every step.
setup() returns the trained model, a held-out batch of 32 windows of 200 characters, the loss and the targets.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pydoc_data.topics
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / "charlm.pt"
TEXT = "".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
CHARS = sorted(set(TEXT))
IDS = torch.tensor([CHARS.index(c) for c in TEXT])
SPLIT = int(0.9 * IDS.numel())  # training text before, held-out text after


class CharLM(nn.Module):
    """nn.Embedding(V, 64) -> nn.LSTM(64, 128, 2 layers, batch_first) -> nn.Linear(128, V): next-character logits."""

    def __init__(self, hidden: int = 128, emb: int = 64):
        super().__init__()
        self.emb = nn.Embedding(len(CHARS), emb)
        self.rnn = nn.LSTM(emb, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, len(CHARS))

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def ce(logits, y):
    """Mean cross-entropy over every step and sequence (nats per character)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def windows(T: int, B: int, held_out: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B windows of T + 1 characters: inputs (B, T), next-character targets (B, T)."""
    lo, hi = (SPLIT, IDS.numel()) if held_out else (0, SPLIT)
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(lo, hi - T - 1, (B,), generator=g).tolist()
    w = torch.stack([IDS[s:s + T + 1] for s in start])
    return w[:, :-1], w[:, 1:]


def train(steps: int = 600, T: int = 100, B: int = 32, seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    model = CharLM()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = windows(T, B, False, seed + 1 + i)
        loss = ce(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i % 100 == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.3f} nats/char = {float(loss) / math.log(2):.2f} bits/char  "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    torch.save(model.state_dict(), CHECKPOINT)
    return model


def trained() -> CharLM:
    model = CharLM()
    if CHECKPOINT.exists():
        model.load_state_dict(torch.load(CHECKPOINT, weights_only=True))
        return model
    return train()


def setup():
    """The trained model (trained first if charlm.pt is missing), a held-out batch, its loss and targets."""
    x, y = windows(200, 32, True, 1234)
    return trained(), x, ce, y


def untrained():
    torch.manual_seed(0)
    x, y = windows(200, 32, True, 1234)
    return CharLM(), x, ce, y


if __name__ == "__main__":
    train()
