"""Prototype assignment and label-free refinement: nearest, smallest edit, move, spawn, merge."""

from __future__ import annotations

import torch

from persona.adapter import AdapterConfig, PersonaAdapter
from persona.cloud import DeployRules, PersonaCloud, RoundReport
from persona.novelty import NoveltyDetector
from persona.prototypes import PrototypeBank, RefineConfig

CONFIG = AdapterConfig(feature_dim=4, head_widths=(4, 3, 2), code_dim=2, hidden_dim=8, clip=0.5)


def _bank(centroids: list[list[float]]) -> PrototypeBank:
    k = len(centroids)
    heads = [(torch.zeros(k, 3, 4), torch.zeros(k, 3)), (torch.zeros(k, 2, 3), torch.zeros(k, 2))]
    return PrototypeBank(torch.tensor(centroids), heads, list(range(k)), [0] * k)


def _cloud(
    bank: PrototypeBank, refine: RefineConfig, assignment: str = "nearest", refresh: int = 1
) -> PersonaCloud:
    torch.manual_seed(0)
    adapter = PersonaAdapter(CONFIG, prototypes=len(bank))
    return PersonaCloud(adapter, bank, refine, DeployRules(assignment, refresh))


def test_nearest_centroid_assignment():
    bank = _bank([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    index, distance = bank.nearest(torch.tensor([[4.0, 5.0, 5.0, 5.0], [0.5, 0.0, 0.0, 0.0]]))
    assert index.tolist() == [1, 0]
    assert torch.allclose(distance, torch.tensor([1.0, 0.5]))


def test_smallest_edit_assignment_picks_the_prototype_needing_the_least_change():
    cloud = _cloud(_bank([[0.0] * 4, [9.0] * 4]), RefineConfig(enabled=False), "smallest-edit")
    with torch.no_grad():  # prototype 1's generator always proposes no edit at all
        for bank in (
            cloud.adapter.generators.weight_maps,
            cloud.adapter.generators.bias_maps,
            cloud.adapter.generators.weight_offsets,
            cloud.adapter.generators.bias_offsets,
        ):
            for p in bank:
                p[1].zero_()
                p[0].fill_(0.3)
    answers, _ = cloud.respond(torch.randn(3, 5, 4), round_index=1)
    assert [a.proto_id for a in answers] == [1, 1, 1]  # although prototype 0 is nearer
    assert all(float(dw.abs().sum()) == 0 for a in answers for dw, _ in a.edit)


def test_refinement_moves_centroids_every_round_and_heads_on_refresh_rounds():
    bank = _bank([[0.0] * 4])
    cloud = _cloud(bank, RefineConfig(enabled=True, eta=0.5), refresh=2)
    summaries = torch.randn(4, 5, 4)
    with torch.no_grad():
        codes = cloud.adapter.codes(summaries)[1].flatten(1)
    answers, report = cloud.respond(summaries, round_index=1)
    assert not torch.allclose(bank.centroids[0], torch.zeros(4))  # moved toward the codes
    assert bank.versions == [0] and not report.head_refresh  # heads wait for round 2
    assert torch.equal(bank.heads[0][0][0], torch.zeros(3, 4))
    cloud.respond(summaries, round_index=2)
    assert bank.versions == [1]
    mean_edit = torch.stack([a.edit[0][0] for a in answers]).mean(dim=0)
    # two rounds of the same summaries: mean edit accumulated twice, divided by its count
    assert torch.allclose(bank.heads[0][0][0], 0.5 * mean_edit, atol=1e-6)
    assert codes.shape == (4, 4)


def test_a_novel_window_spawns_a_prototype_with_its_own_generator_copy():
    bank = _bank([[0.0] * 4])
    cloud = _cloud(bank, RefineConfig(enabled=True, eta=0.1))
    cloud.novelty = NoveltyDetector(torch.zeros(1, 4), spawn_distance=1.0)
    window = torch.randn(1, 5, 4) + 10.0  # its mean is far from the only reference
    answers, report = cloud.respond(window, round_index=1)
    assert report.spawned == 1 and len(bank) == 2
    assert answers[0].proto_id == 1 and bank.ids == [0, 1]
    assert cloud.adapter.generators.prototypes == 2
    assert torch.equal(
        cloud.adapter.generators.weight_maps[0][0], cloud.adapter.generators.weight_maps[0][1]
    )


def test_one_new_context_spawns_once_and_known_windows_never():
    bank = _bank([[0.0] * 4])
    cloud = _cloud(bank, RefineConfig(enabled=True, eta=0.1))
    cloud.novelty = NoveltyDetector(torch.zeros(1, 4), spawn_distance=1.0)
    known = 0.1 * torch.randn(6, 5, 4)
    assert cloud.respond(known, round_index=1)[1].spawned == 0
    new_context = 0.1 * torch.randn(6, 5, 4) + 10.0  # six devices meet one new context
    assert cloud.respond(new_context, round_index=2)[1].spawned == 1
    assert cloud.respond(new_context + 0.05, round_index=3)[1].spawned == 0  # now known


def test_close_prototypes_merge_and_the_dropped_id_retires():
    bank = _bank([[0.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
    bank.heads[0][0][1].fill_(1.0)
    bank.members = [3.0, 1.0, 1.0]
    cloud = _cloud(bank, RefineConfig(enabled=True, eta=0.0, merge_distance=1.0))
    report = RoundReport()
    cloud._merge(report)
    assert report.merged == 1
    assert bank.ids == [0, 2]
    assert torch.allclose(bank.heads[0][0][0], torch.full((3, 4), 0.25))  # member-weighted
    assert cloud.adapter.generators.prototypes == 2


def test_disabled_refinement_leaves_the_bank_alone():
    bank = _bank([[0.0] * 4, [1.0] * 4])
    before = bank.centroids.clone()
    cloud = _cloud(bank, RefineConfig(enabled=False, merge_distance=99.0))
    cloud.respond(torch.randn(5, 5, 4), round_index=10)
    assert torch.equal(bank.centroids, before) and bank.versions == [0, 0] and len(bank) == 2


def test_persona_cloud_skips_malformed_summaries():
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    import strategies.persona as persona_keys
    from strategies.persona import PersonaStrategy

    bank = _bank([[0.0] * 4])
    strategy = PersonaStrategy(
        _cloud(bank, RefineConfig(enabled=False)), lambda r: [], "features", expiry_distance=1.0
    )
    good = torch.randn(5, 4)
    summaries = [good, torch.full((5, 4), float("nan")), torch.randn(5, 3), None]
    replies = []
    TaskIdentity.run_id, TaskIdentity.task_id = 1, 1
    for node, summary in enumerate(summaries, start=10):
        TaskIdentity.node_id = node
        content = RecordDict(
            {
                persona_keys.HELD_PROTO: ConfigRecord(
                    {persona_keys.PROTO_ID: -1, persona_keys.PROTO_VERSION: -1}
                )
            }
        )
        if summary is not None:
            content[persona_keys.SUMMARY] = ArrayRecord({"summary": summary})
        replies.append(Message(content, dst_node_id=1, message_type="train"))
    _, metrics = strategy.aggregate_train(1, replies)
    assert metrics["malformed"] == 3
    assert sorted(strategy._answers) == [10]
    assert len(list(strategy.configure_apply(1, grid=None))) == 1


def test_the_noedit_ablation_serves_prototype_heads_with_zero_edits():
    torch.manual_seed(0)
    bank = _bank([[0.0] * 4, [9.0] * 4])
    adapter = PersonaAdapter(CONFIG, prototypes=2)
    with torch.no_grad():
        for offsets in adapter.generators.weight_offsets:
            offsets.fill_(0.3)  # every edit would be non-zero
    summaries = torch.randn(3, 5, 4)
    plain = PersonaCloud(adapter, bank, RefineConfig(enabled=False), DeployRules())
    ablated = PersonaCloud(adapter, bank, RefineConfig(enabled=False), DeployRules(edits=False))
    edited, _ = plain.respond(summaries, 1)
    zeroed, _ = ablated.respond(summaries, 1)
    assert all(a.edit[0][0].abs().max() > 0 for a in edited)
    for with_edit, without in zip(edited, zeroed, strict=True):
        assert with_edit.proto_id == without.proto_id
        assert all(dw.abs().max() == 0 and db.abs().max() == 0 for dw, db in without.edit)


def test_grouped_generators_equal_a_per_device_computation():
    """One product per prototype gives each device its own prototype's generator output."""
    torch.manual_seed(1)
    adapter = PersonaAdapter(CONFIG, prototypes=3)
    with torch.no_grad():
        for bank in (adapter.generators.weight_maps, adapter.generators.bias_maps):
            for p in bank:
                p.normal_()
    codes = torch.randn(7, CONFIG.layers, CONFIG.code_dim)
    proto = torch.tensor([2, 0, 2, 1, 0, 0, 2])
    with torch.no_grad():
        batched = adapter.generators(codes, proto)
        for i in range(7):
            alone = adapter.generators(codes[i : i + 1], proto[i : i + 1])
            for (dw, db), (aw, ab) in zip(batched, alone, strict=True):
                assert torch.allclose(dw[i], aw[0], atol=1e-6)
                assert torch.allclose(db[i], ab[0], atol=1e-6)
