"""``cloud.device``: the cloud's tensor work on a GPU when asked, on the CPU otherwise.

No test here needs a GPU except the last, which runs only where CUDA is
present: the others run the GPU code path on a stand-in accelerator
(``fake_accelerator``: meta tensors), which fails on the same device mix-ups
a GPU would.
"""

from __future__ import annotations

import os

import pytest
import torch
from conftest import PERSONA_QUICK
from fake_accelerator import META, VALUE, FakeAccelerator
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import strategies.persona as persona_keys
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.cloud import DeployRules, PersonaCloud
from persona.novelty import NoveltyDetector
from persona.prototypes import PrototypeBank, RefineConfig
from simulator.catalog.errors import ScenarioError
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import parse_scenario
from simulator.world.preflight import preflight
from strategies.persona import NO_PROTO, PersonaStrategy
from strategies.pfedhn import HeadHypernetwork, PFedHNParams, PFedHNStrategy
from strategies.records import record_of
from strategies.registry import get_method

# Loading a checkpoint into meta tensors copies nothing; torch warns, the test expects it.
pytestmark = pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
CONFIG = AdapterConfig(feature_dim=4, head_widths=(4, 3, 2), code_dim=2, hidden_dim=8, clip=0.5)
CPU = torch.device("cpu")
DECISIONS = ("sampled", "late", "failed")  # a round's device-level decisions


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine can run CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_gpu_cloud_is_refused_where_cuda_cannot_run(tiny_document, device):
    tiny_document["cloud"] = {"device": device}
    scenario = parse_scenario(tiny_document)  # a scenario reads the same on any machine
    with pytest.raises(ScenarioError, match=r"cloud\.device: .*cannot run CUDA"):
        preflight(scenario)


def test_an_unknown_cloud_device_is_refused_with_the_valid_ones(tiny_document):
    tiny_document["cloud"] = {"device": "gpu"}
    with pytest.raises(ScenarioError, match=r"cloud\.device: unknown device 'gpu'; valid: cpu"):
        parse_scenario(tiny_document)


def test_only_methods_that_declare_a_gpu_cloud_move_there():
    cuda = torch.device("cuda")
    assert get_method("persona").cloud_device_for(cuda) == cuda
    assert get_method("pfedhn").cloud_device_for(cuda) == cuda
    assert get_method("fedavg").cloud_device_for(cuda) == CPU  # it only averages arrays
    assert get_method("persona").cloud_device_for(CPU) == CPU


@pytest.fixture
def task_identity(monkeypatch):
    """Flower messages need a run, task and node id: as inside a ServerApp."""
    for name in ("_run_id", "_task_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def _summary_reply(node: int, summary: torch.Tensor) -> Message:
    held = ConfigRecord({persona_keys.PROTO_ID: NO_PROTO, persona_keys.PROTO_VERSION: NO_PROTO})
    content = RecordDict(
        {persona_keys.SUMMARY: record_of({"summary": summary}), persona_keys.HELD_PROTO: held}
    )
    reply = Message(content, dst_node_id=1, message_type=MessageType.TRAIN)
    reply.metadata.__dict__["_src_node_id"] = node
    return reply


@pytest.mark.parametrize("assignment", ["nearest", "smallest-edit"])
def test_persona_cloud_on_an_accelerator_answers_on_the_cpu(task_identity, assignment):
    """Codes, assignment, edits, spawn, merge and head refresh, all without a device mix-up."""
    torch.manual_seed(0)
    k = 2
    heads = [(torch.zeros(k, 3, 4), torch.zeros(k, 3)), (torch.zeros(k, 2, 3), torch.zeros(k, 2))]
    bank = PrototypeBank(torch.randn(k, CONFIG.layers * 2), heads, [0, 1], [0, 0])
    refine = RefineConfig(enabled=True, eta=0.5, merge_distance=2.0 * VALUE, max_prototypes=4)
    cloud = PersonaCloud(
        PersonaAdapter(CONFIG, prototypes=k),
        bank,
        refine,
        DeployRules(assignment, head_refresh_rounds=1),
        NoveltyDetector(torch.randn(5, 4), 0.5),
        META,
    )
    strategy = PersonaStrategy(cloud, lambda _round: [], "features", expiry_distance=1.0)
    replies = [_summary_reply(node, torch.randn(5, 4)) for node in (11, 12, 13)]
    with FakeAccelerator():
        _, metrics = strategy.aggregate_train(1, replies)
        messages = strategy.configure_apply(1, None)
        state = strategy.checkpoint_state()
        strategy.restore_state(state)
    # every branch of a round ran (the stand-in reads every window as novel)
    assert metrics["spawned"] > 0 and metrics["merged"] > 0
    assert [m.metadata.dst_node_id for m in messages] == [11, 12, 13]
    assert all(persona_keys.PROTO_HEAD in m.content for m in messages)
    assert strategy.take_cloud_flops() > 0  # the FLOP meter counts work on the device
    assert all(t.device == CPU for t in _tensors(state))  # a checkpoint loads anywhere
    assert cloud.bank.centroids.is_meta and cloud._pending_count.is_meta
    assert all(p.is_meta for p in cloud.adapter.parameters())


def test_pfedhn_cloud_on_an_accelerator_sends_and_saves_cpu_tensors(task_identity):
    head = {"w": torch.zeros(3, 4), "b": torch.zeros(3)}
    network = HeadHypernetwork(head, 5, PFedHNParams(), seed=0).to(META)
    strategy = PFedHNStrategy(lambda _round: [11, 12], lambda node: node - 10, network, 0.1)
    with FakeAccelerator():
        messages = list(strategy.configure_train(1, None, None, None))
        strategy.update(1, {"w": torch.ones(3, 4), "b": torch.ones(3)})
        state = strategy.checkpoint_state()
        strategy.restore_state(state)
    assert [m.metadata.dst_node_id for m in messages] == [11, 12]
    assert all(t.device == CPU for t in _tensors(state["network"]))
    assert all(p.is_meta for p in strategy.network.parameters())
    assert strategy.take_cloud_flops() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_with_its_cloud_on_cuda_matches_the_cpu_run(tiny_document, tmp_path):
    """Same devices, same decisions; accuracies within a point (GPU kernels round differently)."""
    tiny_document["methods"] = [{"name": "persona", "params": PERSONA_QUICK}, {"name": "pfedhn"}]
    runs = {}
    for device in ("cpu", "cuda"):
        scenario = parse_scenario(dict(tiny_document, cloud={"device": device}))
        folder = run_plan(RunPlan(scenario, ["persona", "pfedhn"], [0], tmp_path / device), False)
        runs[device] = {m: read_rows(metrics_path(folder, m, 0)) for m in ("persona", "pfedhn")}
    for method in ("persona", "pfedhn"):
        cpu, gpu = runs["cpu"][method], runs["cuda"][method]
        assert [r["kind"] for r in cpu] == [r["kind"] for r in gpu]
        assert gpu[-1]["cloud_device"].startswith("cuda") and cpu[-1]["cloud_device"] == "cpu"
        for a, b in zip(cpu, gpu, strict=True):
            if a["kind"] == "round":
                assert [a[k] for k in DECISIONS] == [b[k] for k in DECISIONS]
            if a["kind"] == "eval":
                assert abs(a["acc_mean"] - b["acc_mean"]) <= 0.01


def test_validating_a_gpu_scenario_changes_nothing_on_this_machine(tiny_document, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    tiny_document["cloud"] = {"device": "cuda"}
    scenario = parse_scenario(tiny_document)  # a document check: no probe, no environment
    assert scenario.cloud.device == "cuda" and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine can run CUDA")
def test_gpu_device_cohorts_are_refused_where_cuda_cannot_run(tiny_document):
    tiny_document["engine"] = {"kind": "inline", "device": "cuda"}
    scenario = parse_scenario(tiny_document)
    assert scenario.engine.cohort_device == "cuda"  # a GPU batches its cohorts by default
    with pytest.raises(ScenarioError, match=r"engine\.device: .*cannot run CUDA"):
        preflight(scenario)
    tiny_document["engine"] = {"kind": "inline", "device": "cuda", "batch_devices": False}
    assert parse_scenario(tiny_document).engine.cohort_device is None


def test_a_default_engine_device_leaves_stored_scenarios_and_their_digests_as_before(
    tiny_document,
):
    """Run folders written before engine.device existed keep their digest and still resume."""
    from simulator.scenario.loading import scenario_to_document

    stored = scenario_to_document(parse_scenario(tiny_document))["engine"]
    assert "device" not in stored and "batch_devices" not in stored
    tiny_document["engine"] = {"kind": "inline", "device": "cuda"}
    assert scenario_to_document(parse_scenario(tiny_document))["engine"]["device"] == "cuda"
