"""pretrain.known_share: the cloud knows that share of the contexts devices meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.scenario.loading import load_scenario, parse_scenario, scenario_to_document
from simulator.world.drift import ActiveShift
from simulator.world.known import KNOWN, UNKNOWN, context_kind

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
FLAGSHIP = SCENARIOS / "lowbandwidth.yaml"


def _deployed(scenario):
    return [(c[0].kind, float(c[0].severity)) for c in scenario.schedule.contexts.values()]


def _split(scenario) -> list[str | None]:
    known = scenario.pretrain.known_contexts()
    return [
        context_kind([ActiveShift(kind=kind, severity=severity)], known)
        for kind, severity in _deployed(scenario)
    ]


@pytest.mark.parametrize(("share", "known"), [(0, 0), (0.5, 3), (1, 6)])
def test_the_share_decides_which_deployed_contexts_are_known(share, known):
    scenario = load_scenario(FLAGSHIP, [f"pretrain.known_share={share}"])
    split = _split(scenario)
    assert split.count(KNOWN) == known and split.count(UNKNOWN) == 6 - known
    # The first contexts in declared order are the known ones.
    assert split == [KNOWN] * known + [UNKNOWN] * (6 - known)
    # Contexts no device meets stay in the family: the cloud still knows them.
    family = {(c.kind, float(c.severity)) for c in scenario.pretrain.family}
    assert {("rotation", 30.0), ("noise", 0.3), ("contrast", 0.5), ("contrast", 0.8)} <= family


def test_the_family_survives_a_round_trip_through_the_run_folder():
    scenario = load_scenario(FLAGSHIP, ["pretrain.known_share=0.5"])
    again = parse_scenario(scenario_to_document(scenario))
    assert again.pretrain.family == scenario.pretrain.family


def test_unset_keeps_the_family_as_written():
    scenario = load_scenario(FLAGSHIP)
    assert _split(scenario).count(KNOWN) == 2  # rotation 60 and noise 0.6


def test_a_scenario_with_no_knowable_context_says_so():
    with pytest.raises(Exception, match=r"pretrain\.known_share"):
        load_scenario(SCENARIOS / "labelshift.yaml", ["pretrain.known_share=1"])
