"""An encoder written the way "The Annotated Transformer" writes it: a LayerNorm built
from mean and std, ``clones`` by deepcopy, SublayerConnection, ``attention()`` with
``masked_fill(mask == 0, -1e9)``, heads split by ``view(...).transpose(1, 2)`` and merged
by ``.contiguous().view(...)``, sinusoidal positions written into a registered buffer,
xavier_uniform_ initialisation, Adam with a LambdaLR warm-up and nn.CrossEntropyLoss.
It classifies padded token sequences by their mean encoding.

This file is PyTorch code. The tests run it with only the three import lines below
changed (see tests/test_ports.py); scripts/make_fixtures.py runs it as it is.
"""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim

PAD, VOCAB, D_MODEL, HEADS, D_FF, LAYERS, CLASSES = 0, 11, 16, 4, 32, 2, 3
BATCH, LENGTH, STEPS, WARMUP = 6, 7, 6, 4


def clones(module, N):
    "Produce N identical layers."
    return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])


class LayerNorm(nn.Module):
    "Construct a layernorm module (See citation for details)."

    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class SublayerConnection(nn.Module):
    """A residual connection followed by a layer norm (norm first, for simplicity)."""

    def __init__(self, size, dropout):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


def attention(query, key, value, mask=None, dropout=None):
    "Compute 'Scaled Dot Product Attention'"
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn


class MultiHeadedAttention(nn.Module):
    def __init__(self, h, d_model, dropout=0.1):
        "Take in model size and number of heads."
        super().__init__()
        assert d_model % h == 0
        self.d_k = d_model // h
        self.h = h
        self.linears = clones(nn.Linear(d_model, d_model), 4)
        self.attn = None
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)  # the same mask for every head
        nbatches = query.size(0)
        query, key, value = [
            lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
            for lin, x in zip(self.linears, (query, key, value))
        ]
        x, self.attn = attention(query, key, value, mask=mask, dropout=self.dropout)
        x = x.transpose(1, 2).contiguous().view(nbatches, -1, self.h * self.d_k)
        del query
        del key
        del value
        return self.linears[-1](x)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(self.w_1(x).relu()))


class Embeddings(nn.Module):
    def __init__(self, d_model, vocab):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Module):
    "Implement the PE function."

    def __init__(self, d_model, dropout, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0)
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x + self.pe[:, : x.size(1)].requires_grad_(False)
        return self.dropout(x)


class EncoderLayer(nn.Module):
    "Encoder is made up of self-attn and feed forward (defined below)"

    def __init__(self, size, self_attn, feed_forward, dropout):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout), 2)
        self.size = size

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)


class Encoder(nn.Module):
    "Core encoder is a stack of N layers"

    def __init__(self, layer, N):
        super().__init__()
        self.layers = clones(layer, N)
        self.norm = LayerNorm(layer.size)

    def forward(self, x, mask):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Classifier(nn.Module):
    def __init__(self, encoder, embed, classes):
        super().__init__()
        self.encoder = encoder
        self.embed = embed
        self.head = nn.Linear(encoder.norm.a_2.shape[0], classes)

    def forward(self, src, src_mask):
        memory = self.encoder(self.embed(src), src_mask)
        keep = src_mask.transpose(1, 2).float()  # (B, T, 1): 1 for real tokens
        pooled = (memory * keep).sum(dim=1) / keep.sum(dim=1)
        return self.head(pooled)


def make_model(vocab, classes, N=LAYERS, d_model=D_MODEL, d_ff=D_FF, h=HEADS, dropout=0.0):
    c = copy.deepcopy
    attn = MultiHeadedAttention(h, d_model, dropout)
    ff = PositionwiseFeedForward(d_model, d_ff, dropout)
    position = PositionalEncoding(d_model, dropout, max_len=64)
    model = Classifier(Encoder(EncoderLayer(d_model, c(attn), c(ff), dropout), N),
                       nn.Sequential(Embeddings(d_model, vocab), c(position)), classes)
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    return model


def rate(step, model_size, factor, warmup):
    if step == 0:
        step = 1
    return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))


def make_batch(rng):
    lengths = rng.integers(3, LENGTH + 1, size=BATCH)
    tokens = rng.integers(1, VOCAB, size=(BATCH, LENGTH))
    tokens[np.arange(LENGTH)[None, :] >= lengths[:, None]] = PAD
    labels = tokens[:, 0] % CLASSES  # the class is told by the first token
    src = torch.tensor(tokens)
    return src, (src != PAD).unsqueeze(-2), torch.tensor(labels)


def run(initial_state=None):
    torch.manual_seed(0)
    model = make_model(VOCAB, CLASSES)
    if initial_state is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in initial_state.items()},
                              strict=True)
    start = {k: np.array(v) for k, v in model.state_dict().items()}
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    lr_scheduler = optim.lr_scheduler.LambdaLR(
        optimizer=optimizer, lr_lambda=lambda step: rate(step, D_MODEL, factor=0.1,
                                                         warmup=WARMUP))
    rng = np.random.default_rng(1)
    losses, rates = [], []
    model.train()
    for _ in range(STEPS):
        src, src_mask, labels = make_batch(rng)
        loss = criterion(model(src, src_mask), labels)
        loss.backward()
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        rates.append(optimizer.param_groups[0]["lr"])
    model.eval()
    src, src_mask, labels = make_batch(rng)
    with torch.no_grad():
        logits = model(src, src_mask)
        probabilities = F.softmax(logits, dim=-1)
    heads = model.encoder.layers[0].self_attn.attn
    return {
        "initial": start,
        "losses": np.array(losses, dtype=np.float32),
        "rates": np.array(rates),
        "probabilities": np.array(probabilities.numpy()),
        "attention": np.array(heads.numpy()),
        "final": {k: np.array(v) for k, v in model.state_dict().items()},
    }
