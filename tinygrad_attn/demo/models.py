"""The two models the demo compares: a small Transformer encoder and a vanilla RNN, each
reading a whole sequence and answering at its last token."""

from __future__ import annotations

import math

import numpy as np

from tinygrad_attn import nn, random
from tinygrad_attn.nn.module import Parameter
from tinygrad_attn.tensor import Tensor


class AttentionClassifier(nn.Module):
    """Embedding + sinusoidal positions + a Transformer encoder; a linear read-out of the
    answer position's vector gives the class logits.

    Shape: tokens (B, T) int -> logits (B, num_classes).
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 32, nhead: int = 4,
                 num_layers: int = 2, dim_feedforward: int = 64, max_len: int = 128) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positions = nn.PositionalEncoding(d_model, max_len)
        # Pre-norm trains without warm-up tricks at this size; no dropout, since the
        # task draws fresh sequences every step and cannot be memorised.
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0,
                                           norm_first=True, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, num_classes)

    def embed(self, tokens: np.ndarray) -> Tensor:
        """The vectors the encoder receives: word embedding + position signal. Shape
        (B, T, d_model). Two equal words at the same position get identical vectors."""
        return self.positions(self.embedding(tokens))

    def encode(self, tokens: np.ndarray) -> Tensor:
        """Every position's vector after the encoder, shape (B, T, d_model)."""
        return self.encoder(self.embed(tokens))

    def forward(self, tokens: np.ndarray) -> Tensor:
        return self.head(self.encode(tokens)[:, -1])

    def attention_weights(self, tokens: np.ndarray) -> list[np.ndarray]:
        """Per layer, the attention weights of every head, each (B, heads, T, T).

        Re-runs each layer's ``self_attn`` on exactly the input that layer's attention
        block sees (the pre-norm ``norm1(x)``), asking for per-head weights.
        """
        weights = []
        x = self.embed(tokens)
        for layer in self.encoder.layers:
            attn_in = layer.norm1(x) if layer.norm_first else x
            _, w = layer.self_attn(attn_in, attn_in, attn_in, need_weights=True,
                                   average_attn_weights=False)
            weights.append(w.data)
            x = layer(x)
        return weights


class VanillaRNN(nn.Module):
    """The recurrence of the notes, ``h_t = tanh(x_t W_xh + h_{t-1} W_hh + b)``, over word
    embeddings; a linear read-out of the last hidden state gives the class logits.

    Shape: tokens (B, T) int -> logits (B, num_classes).
    """

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 32,
                 hidden_size: int = 96) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        bound = 1.0 / math.sqrt(hidden_size)  # PyTorch's nn.RNN initialisation
        gen = random.generator()
        self.w_xh = Parameter(gen.uniform(-bound, bound, (embed_dim, hidden_size))
                              .astype(np.float32))
        # An orthogonal W_hh keeps the early gradient from exploding or vanishing
        # through the 66 steps, the RNN's best chance at long gaps.
        q, _ = np.linalg.qr(gen.standard_normal((hidden_size, hidden_size)))
        self.w_hh = Parameter(q.astype(np.float32))
        self.b = Parameter(np.zeros(hidden_size, dtype=np.float32))
        self.head = nn.Linear(hidden_size, num_classes)

    def hidden_states(self, x: Tensor) -> Tensor:
        """Run the recurrence over embedded inputs x (B, T, E); the last h, (B, H)."""
        # The input projection of every step at once; only h_{t-1} W_hh must wait.
        x_proj = x @ self.w_xh + self.b
        h = x_proj[:, 0].tanh()  # h_{-1} = 0
        for t in range(1, x.shape[1]):
            h = (x_proj[:, t] + h @ self.w_hh).tanh()
        return h

    def forward(self, tokens: np.ndarray) -> Tensor:
        return self.head(self.hidden_states(self.embedding(tokens)))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_hidden_size(target: int, vocab_size: int, num_classes: int,
                        embed_dim: int) -> int:
    """The RNN hidden size whose parameter count comes closest to ``target``."""
    def count(h: int) -> int:
        return vocab_size * embed_dim + embed_dim * h + h * h + h + h * num_classes + \
            num_classes
    return min(range(8, 512), key=lambda h: abs(count(h) - target))
