"""The five seed documents, by key and file name: the texts whose statements rnnscope tests.

    000  000_0183f85bd5403c3d.txt  lecture notes "RNN vanishing/exploding gradient problem": the loss
                                   gradient flowing back through layers, the unrolled RNN, W_hh^k, clipping
    001  001_28bb9cc7f1f7e16d.txt  S. Pal (2019), "Mathematical derivation of BPTT for RNN, and gradient
                                   vanishing and exploding problems": Lemma 2, Theorems 1-4 (Pal form)
    002  002_87b582d44353f60f.txt  a NumPy notebook on vanishing and exploding gradients "from an intuitive
                                   standpoint": the eigenvalue condition 4 for the sigmoid, two random examples
    003  003_442f2c9f526e9ba0.txt  course article "Vanishing and Exploding Gradients" (padhai.onefourthlabs.in):
                                   the derivative bounds and ||ds_t/ds_k|| <= (gamma lambda)^(t-k)
    004  004_fafa8053bfab969c.txt  blog post "Neural Network (2): RNN and Problems of Exploding/Vanishing
                                   Gradient" (2018): dE_t/dV, the BPTT sum, ReLU, clipping, LSTM

Their claims run in seeds.claims (one module per document, claims_000 .. claims_004), their figures in
seeds.reproduce; results carry a seed's file name, never a path.

Example:
    >>> SEED_FILES["001"]
    '001_28bb9cc7f1f7e16d.txt'
"""

from __future__ import annotations

__all__ = ["SEED_FILES"]

SEED_FILES = {"000": "000_0183f85bd5403c3d.txt", "001": "001_28bb9cc7f1f7e16d.txt",
              "002": "002_87b582d44353f60f.txt", "003": "003_442f2c9f526e9ba0.txt",
              "004": "004_fafa8053bfab969c.txt"}  # key -> the seed document's file name
