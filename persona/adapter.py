"""The neural adapter: a device's data summary in, per-layer editing matrices out.

    summary --encoder--> z0 --cross-layer GRU--> z_1..z_L --generator_l^(k)--> dW_l, db_l

- The *encoder* maps a window summary to a code ``z0``: either the window's
  backbone features (a set encoder: per-sample MLP, then mean and standard
  deviation over the window) or their pooled statistics (mean and standard
  deviation computed on the device, far fewer bytes).
- *Cross-layer knowledge transfer*: a stacked GRU with ``L`` layers reads the
  length-``L`` sequence ``[z0, ..., z0]``; layer ``l``'s final hidden state gives
  ``z_l = tanh(MLP_l(h_l))``, so each layer's code depends on the layers below.
  Without it (an ablation) each ``z_l = tanh(MLP_l(z0))`` independently.
- A *generator* per head layer and per prototype ``k`` turns ``z_l`` into
  ``dW_l = reshape(A_l z_l + a_l)`` (or the low-rank ``U_l diag(P_l z_l) V_l``),
  clipped elementwise to ``[-clip, clip]``. Generator weights are learned
  parameters, one copy per prototype, so an edit depends on the prototype it
  is added to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from basemodel.architecture import HeadWeights


@dataclass(frozen=True)
class AdapterConfig:
    """Shape and behaviour of the adapter.

    ``head_widths`` are the editable head's layer widths (``[64, 64, 10]``: two
    layers). ``summary`` is ``"features"`` or ``"stats"``. ``rank`` 0 means full
    edits; ``rank > 0`` the low-rank variant.
    """

    feature_dim: int
    head_widths: tuple[int, ...]
    code_dim: int = 16
    hidden_dim: int = 64
    clip: float = 0.1
    rank: int = 0
    cross_layer: bool = True
    summary: str = "features"

    @property
    def layers(self) -> int:
        return len(self.head_widths) - 1

    def layer_shape(self, layer: int) -> tuple[int, int]:
        """``(out, in)`` of head layer ``layer``."""
        return self.head_widths[layer + 1], self.head_widths[layer]


def summarize_window(features: torch.Tensor, kind: str) -> torch.Tensor:
    """What a device uploads: ``(n, F)`` features as they are, or ``(2F,)`` mean and std."""
    if kind == "features":
        return features
    if kind == "stats":
        return torch.cat([features.mean(dim=0), features.std(dim=0, unbiased=False)])
    raise ValueError(f"unknown summary kind {kind!r}; valid kinds: features, stats")


def window_means(summaries: torch.Tensor, kind: str) -> torch.Tensor:
    """The mean backbone feature of each summarized window: ``(B, F)`` from a batch."""
    if kind == "features":
        return summaries.mean(dim=1)
    return summaries[:, : summaries.shape[1] // 2]


def spread(samples: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Population standard deviation over dim 1 of ``(B, n, H)``, given its ``mean (B, H)``.

    Two passes (center, then mean of squares) instead of ``torch.std``: the
    same value to float rounding (within 3e-7 here), but ``torch.std``'s
    reduction over a middle dimension is slow on CPUs (at 10,000 windows it
    was 40% of the cloud step). A constant feature gets a zero gradient, as
    with ``torch.std`` (a plain ``sqrt`` would give NaN there).
    """
    centered = samples - mean.unsqueeze(1)
    # Deployment squares in place (no second (B, n, H) tensor); training keeps it for autograd.
    squares = centered.square() if torch.is_grad_enabled() else centered.square_()
    variance = squares.mean(dim=1)
    positive = variance > 0
    return torch.where(positive, variance, 1.0).sqrt() * positive


class SummaryEncoder(nn.Module):
    """Window summary -> code ``z0`` (permutation-invariant over the window's samples)."""

    def __init__(self, config: AdapterConfig):
        super().__init__()
        self.kind = config.summary
        hidden, features = config.hidden_dim, config.feature_dim
        self.per_sample = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True))
        pooled = 2 * hidden if self.kind == "features" else 2 * features
        self.to_code = nn.Sequential(
            nn.Linear(pooled, hidden), nn.ReLU(), nn.Linear(hidden, config.code_dim)
        )

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        """``(B, n, F)`` features or ``(B, 2F)`` statistics -> ``(B, code_dim)``."""
        if self.kind == "features":
            h = self.per_sample(summary)
            mean = h.mean(dim=1)
            pooled = torch.cat([mean, spread(h, mean)], dim=-1)
        else:
            pooled = summary
        return self.to_code(pooled)


class LayerCodes(nn.Module):
    """``z0`` -> one code per head layer, through the stacked GRU (or independently)."""

    def __init__(self, config: AdapterConfig):
        super().__init__()
        self.layers = config.layers
        self.cross_layer = config.cross_layer
        size = config.hidden_dim if config.cross_layer else config.code_dim
        if config.cross_layer:
            self.gru = nn.GRU(
                config.code_dim, config.hidden_dim, num_layers=self.layers, batch_first=True
            )
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(size, config.hidden_dim),
                nn.ReLU(),
                nn.Linear(config.hidden_dim, config.code_dim),
            )
            for _ in range(self.layers)
        )

    def forward(self, z0: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` -> ``(B, L, C)``."""
        if self.cross_layer:
            sequence = z0.unsqueeze(1).expand(-1, self.layers, -1).contiguous()
            _, final = self.gru(sequence)  # (L, B, H): layer l's final state
            states = [final[layer] for layer in range(self.layers)]
        else:
            states = [z0] * self.layers
        return torch.stack([torch.tanh(h(s)) for h, s in zip(self.heads, states, strict=True)], 1)


def _grouped(
    z: torch.Tensor,
    maps: torch.Tensor,
    offsets: torch.Tensor,
    groups: list[tuple[int, torch.Tensor]],
) -> torch.Tensor:
    """``maps[k] z + offsets[k]`` for each device's prototype ``k``: ``(B, D)``."""
    if len(groups) == 1:  # every device on one prototype: no scatter needed
        k, _ = groups[0]
        return torch.addmm(offsets[k], z, maps[k].T)
    result = z.new_empty(z.shape[0], maps.shape[1])
    for k, rows in groups:
        result.index_copy_(0, rows, torch.addmm(offsets[k], z[rows], maps[k].T))
    return result


class Generators(nn.Module):
    """Per-layer, per-prototype edit generators held as stacked tensors ``(K, ...)``."""

    def __init__(self, config: AdapterConfig, prototypes: int = 1):
        super().__init__()
        self.config = config
        self.weight_maps = nn.ParameterList()
        self.weight_offsets = nn.ParameterList()
        self.bias_maps = nn.ParameterList()
        self.bias_offsets = nn.ParameterList()
        self.left = nn.ParameterList()
        self.right = nn.ParameterList()
        code, rank = config.code_dim, config.rank
        for layer in range(config.layers):
            out, inp = config.layer_shape(layer)
            mapped = rank if rank > 0 else out * inp
            self.weight_maps.append(nn.Parameter(1e-3 * torch.randn(prototypes, mapped, code)))
            self.weight_offsets.append(nn.Parameter(torch.zeros(prototypes, mapped)))
            self.bias_maps.append(nn.Parameter(1e-3 * torch.randn(prototypes, out, code)))
            self.bias_offsets.append(nn.Parameter(torch.zeros(prototypes, out)))
            if rank > 0:
                self.left.append(nn.Parameter(torch.randn(prototypes, out, rank) / rank**0.5))
                self.right.append(nn.Parameter(torch.randn(prototypes, rank, inp) / inp**0.5))

    @property
    def prototypes(self) -> int:
        return int(self.weight_maps[0].shape[0])

    def forward(self, codes: torch.Tensor, proto: torch.Tensor) -> HeadWeights:
        """Clipped edits ``[(dW (B,out,in), db (B,out))]`` for codes ``(B,L,C)``, ids ``(B,)``.

        Devices are grouped by prototype: one matrix product per prototype
        present, never a per-device copy of a generator (at 10,000 devices,
        gathering each device's generator would move gigabytes).
        """
        clip = self.config.clip
        groups = [(k, torch.nonzero(proto == k).flatten()) for k in proto.unique().tolist()]
        edits = []
        for layer in range(self.config.layers):
            out, inp = self.config.layer_shape(layer)
            z = codes[:, layer, :]
            mapped = _grouped(z, self.weight_maps[layer], self.weight_offsets[layer], groups)
            if self.config.rank > 0:
                scaled = self.left[layer][proto] * mapped.unsqueeze(1)  # U diag(P z)
                delta_w = torch.bmm(scaled, self.right[layer][proto])
            else:
                delta_w = mapped.view(-1, out, inp)
            delta_b = _grouped(z, self.bias_maps[layer], self.bias_offsets[layer], groups)
            if torch.is_grad_enabled():
                edits.append((delta_w.clamp(-clip, clip), delta_b.clamp(-clip, clip)))
            else:  # deployment: clip in place, no second copy of a large batch
                edits.append((delta_w.clamp_(-clip, clip), delta_b.clamp_(-clip, clip)))
        return edits

    @torch.no_grad()
    def select(self, keep: list[int]) -> None:
        """Keep (and reorder, or repeat) prototype copies: ``keep[k_new] = k_old``."""
        index = torch.as_tensor(keep, dtype=torch.long, device=self.weight_maps[0].device)
        for bank in (
            self.weight_maps,
            self.weight_offsets,
            self.bias_maps,
            self.bias_offsets,
            self.left,
            self.right,
        ):
            for i, param in enumerate(bank):
                bank[i] = nn.Parameter(param.data[index].clone())


class PersonaAdapter(nn.Module):
    """Encoder + cross-layer codes (shared) and per-prototype generators."""

    def __init__(self, config: AdapterConfig, prototypes: int = 1):
        super().__init__()
        self.config = config
        self.encoder = SummaryEncoder(config)
        self.layer_codes = LayerCodes(config)
        self.generators = Generators(config, prototypes)

    def codes(self, summary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z0 (B,C), per-layer codes (B,L,C))`` for a batch of summaries."""
        z0 = self.encoder(summary)
        return z0, self.layer_codes(z0)

    def forward(self, summary: torch.Tensor, proto: torch.Tensor) -> HeadWeights:
        return self.generators(self.codes(summary)[1], proto)


def edited_heads(base: HeadWeights, edits: HeadWeights) -> HeadWeights:
    """``W = P + dW`` per layer; ``base`` is ``[(W (B,out,in) or (out,in), b)]``."""
    return [(w + dw, b + db) for (w, b), (dw, db) in zip(base, edits, strict=True)]


def batched_head_forward(features: torch.Tensor, heads: HeadWeights) -> torch.Tensor:
    """Run B different heads: ``features (B, m, in)`` with ``W (B, out, in)`` -> ``(B, m, out)``."""
    h = features
    for i, (w, b) in enumerate(heads):
        h = torch.bmm(h, w.transpose(1, 2)) + b.unsqueeze(1)
        if i < len(heads) - 1:
            h = torch.relu(h)
    return h


def edit_norms(edits: HeadWeights) -> torch.Tensor:
    """Frobenius norm of each device's whole edit, ``(B,)``: the smallest-edit rule's score."""
    squares = [dw.pow(2).sum(dim=(1, 2)) + db.pow(2).sum(dim=1) for dw, db in edits]
    return torch.stack(squares).sum(dim=0).sqrt()
