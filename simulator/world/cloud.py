"""The cloud's side of the world: its own data, the contexts it knows, the starting model.

The cloud holds a share of the base dataset (``data.cloud_fraction``), split
again into the **base** share that trains the shared starting model (clean
images, plus the contexts of ``Pretrain.starting_contexts``: in the default
``cloud-best`` regime every family context too) and the **family** share,
held out from it (``pretrain.family_fraction``), which the cloud can render
under the shift family it knows (``pretrain.family``) for methods with a
cloud-side learner. Both depend on the pretraining seed only
(``pretrain_seed``), so a fixed pretraining seed gives every simulation seed
the same starting model and the same data split.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from basemodel.pretraining import PretrainConfig, pretrained_state
from basemodel.resources import CloudResources, LabeledShare, Transform
from basemodel.threads import fixed_threads
from simulator.catalog.datasets import dataset_spec, load_dataset
from simulator.catalog.seeding import rng_for, torch_seed_for
from simulator.scenario.schema import KnownContext, Scenario
from simulator.world.build import World, new_model, pretrain_seed
from simulator.world.drift import ActiveShift, transform
from simulator.world.partition import split_pools
from simulator.world.replay import REPLAY_CLOUD_SAMPLES, ratings_digest
from simulator.world.sources import (
    CLOUD_USERS_FROM,
    catalogue_for,
    interest_severity,
    replay_for,
)


def rendered_contexts(
    contexts: list[KnownContext], seed: int, tag: str
) -> tuple[list[Transform], list[str]]:
    """Known contexts as image transforms: the clean source first."""
    transforms: list[Transform] = [lambda images: images]
    names = ["clean"]
    for i, context in enumerate(contexts):
        shift = [ActiveShift(context.kind, context.severity)]
        transforms.append(lambda images, shift=shift, i=i: transform(images, shift, seed, tag, i))
        names.append(f"{context.kind}={context.severity:g}")
    return transforms, names


def _part_of(count: int, scenario: Scenario, seed: int, part: str) -> np.ndarray:
    """Sorted indices of the cloud's ``part`` among its ``count`` samples or users.

    ``pretrain.family_fraction`` of them, drawn by the pretraining seed, are the
    family share, held out from the base share; with nothing held out, family
    learners reuse the base share.
    """
    held_out = int(round(scenario.pretrain.family_fraction * count))
    order = rng_for(seed, "cloud-split").permutation(count)
    chosen = order[:held_out] if part == "family" else order[held_out:]
    if part == "family" and held_out == 0:
        chosen = order
    return np.sort(chosen)


def _contexts_of(scenario: Scenario, part: str) -> list[KnownContext]:
    """The contexts a share is rendered under: the family's, or the starting model's."""
    if part == "family":
        return scenario.pretrain.family
    return scenario.pretrain.starting_contexts()


def cloud_share(scenario: Scenario, seed: int, part: str) -> LabeledShare:
    """The cloud's ``"base"`` or ``"family"`` share, with the contexts it is rendered under.

    ``seed`` is the pretraining seed.
    """
    spec = dataset_spec(scenario.data.dataset)
    if spec.ratings is not None:
        return _replay_share(scenario, seed, part)
    if spec.catalogue is not None:
        return _click_share(scenario, seed, part)
    dataset = load_dataset(scenario.data.dataset)
    cloud = split_pools(dataset, scenario.data, seed).cloud
    indices = torch.as_tensor(cloud[_part_of(len(cloud), scenario, seed, part)])
    contexts = _contexts_of(scenario, part)
    transforms, names = rendered_contexts(contexts, seed, f"{part}-context")
    return LabeledShare(dataset.images[indices], dataset.labels[indices], transforms, names)


def _click_share(scenario: Scenario, seed: int, part: str) -> LabeledShare:
    """The cloud's own users' clicks under each known interest context.

    The cloud's users (numbered from ``CLOUD_USERS_FROM``, never a device) are
    split like images: ``pretrain.family_fraction`` of them hold the family
    share. A user's samples under each context are drawn from a generator of
    (seed, part, user, context), so contexts differ by the interest alone.
    """
    catalogue = catalogue_for(scenario, seed)
    config = catalogue.config
    users = [CLOUD_USERS_FROM + int(u) for u in _part_of(config.cloud_users, scenario, seed, part)]
    contexts = _contexts_of(scenario, part)
    severities = [0.0, *(interest_severity([ActiveShift(c.kind, c.severity)]) for c in contexts)]
    names = ["clean", *(f"{c.kind}={c.severity:g}" for c in contexts)]
    inputs, labels = [], []
    for index, severity in enumerate(severities):
        drawn = [
            catalogue.samples(
                user, severity, config.cloud_samples, rng_for(seed, part, "clicks", user, index)
            )
            for user in users
        ]
        inputs.append(torch.cat([x for x, _, _ in drawn]))
        labels.append(torch.cat([y for _, y, _ in drawn]))
    groups = torch.as_tensor(users).repeat_interleave(config.cloud_samples)
    transforms: list[Transform] = [lambda _base, x=x: x for x in inputs]
    return LabeledShare(inputs[0], labels[0], transforms, names, labels, groups)


def _replay_share(scenario: Scenario, seed: int, part: str) -> LabeledShare:
    """The cloud's own users' recorded clicks: one context, their whole timelines.

    The cloud's users are split like images: ``pretrain.family_fraction`` of
    them hold the family share. Each contributes ``REPLAY_CLOUD_SAMPLES``
    samples from anywhere on its timeline (the cloud has the whole record).
    """
    replay = replay_for(scenario, seed)
    users = replay.cloud_users[_part_of(len(replay.cloud_users), scenario, seed, part)]
    inputs, labels = [], []
    for user in users:
        rng = rng_for(seed, part, "replay", int(user))
        x, y = replay.anywhere(int(user), REPLAY_CLOUD_SAMPLES, rng)
        inputs.append(x)
        labels.append(y)
    groups = torch.as_tensor(users.astype(np.int64) + CLOUD_USERS_FROM)
    x, y = torch.cat(inputs), torch.cat(labels)
    transforms: list[Transform] = [lambda _base, x=x: x]
    return LabeledShare(
        x, y, transforms, ["recorded"], [y], groups.repeat_interleave(REPLAY_CLOUD_SAMPLES)
    )


def cloud_resources(world: World) -> CloudResources:
    """What a method's cloud half may use: the starting model and both labeled shares."""
    scenario = world.scenario
    seed = pretrain_seed(scenario, world.seed)
    model = new_model(scenario)
    model.load_state_dict(world.pretrained)
    return CloudResources(
        model=model.eval(),
        num_classes=world.dataset.num_classes,
        base=cloud_share(scenario, seed, "base"),
        family=cloud_share(scenario, seed, "family"),
        dirichlet_alpha=scenario.data.dirichlet_alpha,
        window=scenario.data.window,
        pretrained_key=Path(world.spec.pretrained_path).stem.removeprefix("pretrained-"),
        seed=seed,
    )


def starting_model_words(scenario: Scenario) -> str:
    """The starting model's regime and what it trained under, for the run log."""
    contexts = scenario.pretrain.starting_contexts()
    trained = "clean" + "".join(f", {c.kind} {c.severity:g}" for c in contexts)
    return f"{scenario.pretrain.starting_model}, trained on {trained}"


def pretrain_for(scenario: Scenario, seed: int, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Pretrain (or load from cache) the shared starting model; returns its file and key.

    ``seed`` is the run seed; the model depends on its pretraining seed only.
    The training set is the cloud's base share, clean and under the base contexts.
    """
    seed = pretrain_seed(scenario, seed)
    spec = dataset_spec(scenario.data.dataset)
    with torch.random.fork_rng():
        torch.manual_seed(torch_seed_for(seed, "model-init"))
        model = new_model(scenario)
    config = PretrainConfig(
        epochs=scenario.pretrain.epochs,
        batch_size=scenario.pretrain.batch_size,
        lr=scenario.pretrain.lr,
    )
    description: dict[str, Any] = {
        "dataset": spec.name,
        "model": type(model.backbone).__name__,
        "width": scenario.model.width,
        "head": model.head.widths(),
        "cloud_fraction": scenario.data.cloud_fraction,
        "test_fraction": scenario.data.test_fraction,
        "base": [c.model_dump() for c in scenario.pretrain.starting_contexts()],
        "family_fraction": scenario.pretrain.family_fraction,
    }
    if spec.catalogue is not None:  # a click stream: its generator is part of the data
        description["catalogue"] = asdict(spec.catalogue)
    if spec.ratings is not None:  # a replay: the file, and who is the cloud
        path = str(scenario.data.path)
        description["ratings"] = {
            "format": spec.ratings,
            "sha256": ratings_digest(path, spec.ratings),
        }
    images, labels = cloud_share(scenario, seed, "base").rendered()
    with fixed_threads():  # the same weights on every machine and engine
        _, path = pretrained_state(
            model, images, labels, config, seed, description, cache_dir, "starting model"
        )
    return path, path.stem.removeprefix("pretrained-")
