"""Any scenario document ends as a valid Scenario or a ScenarioError: never another exception."""

from __future__ import annotations

import copy

import yaml
from conftest import TINY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.catalog.errors import ScenarioError
from simulator.scenario.documents import read_document
from simulator.scenario.loading import parse_scenario
from simulator.scenario.schema import Scenario

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*prefix, i))


ALL_PATHS = [p for p in _paths(TINY) if p]


@st.composite
def mutated(draw):
    document = copy.deepcopy(TINY)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["set", "delete", "extra"]))
            if action == "set":
                parent[path[-1]] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return document


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated())
def test_mutated_documents_validate_or_fail_with_a_key_path(document):
    try:
        assert isinstance(parse_scenario(document, "fuzz.yaml"), Scenario)
    except ScenarioError as error:
        for line in str(error).splitlines():
            assert line.startswith("fuzz.yaml: ")
            assert len(line) > len("fuzz.yaml: ")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(values)
def test_arbitrary_documents_never_raise_anything_else(document):
    try:
        result = parse_scenario(document, "fuzz.yaml")
    except ScenarioError as error:
        assert str(error).startswith("fuzz.yaml: ")
    else:
        assert isinstance(result, Scenario)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=200))
def test_arbitrary_text_files_never_raise_anything_else(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        parse_scenario(read_document(path), str(path))
    except ScenarioError as error:
        assert str(error).startswith(str(path))


def test_a_name_cannot_escape_the_output_folder():
    for name in ("..", ".", "...", "a/b"):
        document = dict(copy.deepcopy(TINY), name=name)
        try:
            parse_scenario(document, "s.yaml")
        except ScenarioError as error:
            assert "name" in str(error)
        else:
            raise AssertionError(f"name {name!r} was accepted")
    assert yaml.safe_load("name: ok") == {"name": "ok"}
