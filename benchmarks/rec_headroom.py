"""How much a drift of interest costs a model trained before it: the recommendation headroom.

Trains the starting model (a sequence backbone and the editable head) on the
synthetic stream's base interest (``simulator.world.interests``), then
prints, for each drift severity, the AUC of the trained model, of the
population prior (the true click model with the fleet's base interest, no
personal history) and of the oracle (the true click probability). The gap
between the oracle and the trained model after a drift is what adaptation
can win back; the gap at severity 0 is what the backbone does not learn.
Usage:

    python benchmarks/rec_headroom.py --backbone gru4rec --users 800 --epochs 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from basemodel.architecture import build_model
from simulator.catalog.interest_model import InterestConfig
from simulator.catalog.ranking_metrics import auc, gauc
from simulator.catalog.seeding import rng_for
from simulator.world.interests import InterestCatalogue


def draw(catalogue: InterestCatalogue, users: range, severity: float, per_user: int, tag: str):
    """Samples of ``users`` at one severity, with true probabilities and user ids."""
    xs, ys, truths, owners = [], [], [], []
    for user in users:
        x, y, truth = catalogue.samples(
            user, severity, per_user, rng_for(catalogue.seed, tag, user, int(severity))
        )
        xs.append(x), ys.append(y), truths.append(truth), owners.append(np.full(per_user, user))
    return torch.cat(xs), torch.cat(ys), np.concatenate(truths), np.concatenate(owners)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int):
    """Adam on the cross-entropy of click labels, minibatches of 256."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 256):
            batch = order[start : start + 256]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="gru4rec", choices=("gru4rec", "sasrec"))
    parser.add_argument("--users", type=int, default=800, help="training users (base interest)")
    parser.add_argument("--per-user", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--severities", default="0,30,60,90,180")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    config = InterestConfig()
    catalogue = InterestCatalogue(config, args.seed)
    started = time.perf_counter()
    x, y, _, _ = draw(catalogue, range(args.users), 0.0, args.per_user, "train")
    model = build_model(args.backbone, (config.history + 1,), 2)
    train(model, x, y, args.epochs, args.seed)
    print(
        f"{args.backbone}: trained on {len(x):,} samples of {args.users} users "
        f"in {time.perf_counter() - started:.1f} s"
    )
    head = ("severity", "model AUC", "model GAUC", "prior AUC", "oracle AUC")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (8, 9, 10, 9, 10), strict=True)))
    held_out = range(10_000, 10_300)  # users never seen in training
    for severity in (float(s) for s in args.severities.split(",")):
        x, y, truth, owners = draw(catalogue, held_out, severity, args.per_user, "test")
        with torch.no_grad():
            scores = torch.softmax(model(x), dim=1)[:, 1].numpy()
        prior = catalogue.click_probability(catalogue.base, x[:, -1].long().numpy())
        labels = y.numpy()
        print(
            f"{severity:>8g} {auc(scores, labels):>9.3f} {gauc(scores, labels, owners):>10.3f} "
            f"{auc(prior, labels):>9.3f} {auc(truth, labels):>10.3f}"
        )


if __name__ == "__main__":
    main()
