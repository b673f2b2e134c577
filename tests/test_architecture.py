"""The layout's rules hold: no import cycles, the world without Flower, layers pointing one way.

Imports are read from the source (every ``import`` statement, inside
functions too), so a cycle cannot hide behind a function-level import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("basemodel", "persona", "strategies", "simulator", "reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere in its body (``from a import b`` counts
    ``a.b`` when that is a module, else ``a``)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others():
    assert _cycles(_graph()) == []


def test_layers_point_one_way():
    """simulator -> strategies -> (persona, basemodel); persona -> basemodel; reports read runs."""
    allowed = {
        "basemodel": {"basemodel"},
        "persona": {"persona", "basemodel"},
        "strategies": {"strategies", "persona", "basemodel"},
        "simulator": {"simulator", "strategies", "basemodel", "reports"},
        "reports": {"reports", "simulator"},
    }
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if target.split(".")[0] not in allowed[module.split(".")[0]]
    ]
    assert wrong == []


def test_only_the_front_ends_build_reports():
    """The command line and the Python API; nothing a run executes draws a report."""
    graph = _graph()
    users = sorted(
        m
        for m, targets in graph.items()
        if m.startswith("simulator") and any(t.startswith("reports") for t in targets)
    )
    assert users == ["simulator.api", "simulator.cli"]


def test_reports_read_folders_only_through_the_run_and_sweep_readers():
    targets = {t for m, ts in _graph().items() if m.startswith("reports") for t in ts}
    readers = {"simulator.run.reader", "simulator.sweep.reader"}  # run folders, sweep folders
    readers.add("simulator.run.interval")  # the seed-level interval rule: no folder access
    readers.add("simulator.run.provenance")  # provenance.json, for compare's warnings
    assert {t for t in targets if t.startswith("simulator")} <= readers


def test_the_simulator_uses_no_persona_code():
    graph = _graph()
    assert [
        m
        for m, ts in graph.items()
        if m.startswith("simulator") and any(t.startswith("persona") for t in ts)
    ] == []


def test_the_world_names_no_flower_module():
    for path in (ROOT / "simulator" / "world").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("flwr", "ray") for n in names), path


def test_importing_the_world_loads_no_flower():
    modules = sorted(m for m in _modules() if m.startswith(("simulator.world", "basemodel")))
    code = (
        f"import sys, {', '.join(modules)}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flwr', 'ray')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


# The rooms of ``simulator/``, lowest first: each imports only rooms at or below it.
ROOMS = ("catalog", "scenario", "world", "engine", "run", "sweep")


def _room(module: str) -> int | None:
    """A simulator module's place in ``ROOMS`` (the front ends above them all)."""
    parts = module.split(".")
    if parts[0] != "simulator":
        return None
    if len(parts) > 1 and parts[1] in ROOMS:
        return ROOMS.index(parts[1])
    return len(ROOMS)  # simulator.cli, simulator.api, the package itself


def test_every_arrow_inside_the_simulator_points_down():
    """Function-level imports count: a lazy import up the rooms is still an arrow up."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _room(module) is not None and _room(target) is not None and _room(target) > _room(module)  # type: ignore[operator]
    ]
    assert wrong == []


def test_the_room_check_sees_an_arrow_up():
    assert _room("simulator.scenario.schema") < _room("simulator.world.replay")  # type: ignore[operator]
    assert _room("simulator.catalog.shifts") == 0 and _room("simulator.cli") == len(ROOMS)


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_method_is_named_outside_its_own_file_and_the_registry():
    """Roles are declared on ``Method``; nothing else treats a method specially by name."""
    import importlib

    from strategies.registry import method_names

    names = set(method_names())
    owners: dict[str, Path] = {}  # the file whose METHOD (or METHODS) declares each method
    for path in sorted((ROOT / "strategies").glob("*.py")):
        module = importlib.import_module(f"strategies.{path.stem}")
        for method in [getattr(module, "METHOD", None), *getattr(module, "METHODS", [])]:
            if method is not None:
                owners[method.name] = path
    assert set(owners) == names
    named = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "registry.py" and path.parent.name == "strategies":
                continue
            for line, text in _string_literals(path):
                if text in names and owners[text].resolve() != path.resolve():
                    named.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert named == []


def test_one_helper_writes_files_atomically():
    """Renaming a temporary file over a target happens in ``basemodel.atomic`` only."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "basemodel" / "atomic.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                receiver = node.func.value
                is_os = isinstance(receiver, ast.Name) and receiver.id == "os"
                if is_os and node.func.attr in ("replace", "rename"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if (
                    node.func.attr in ("replace", "rename")
                    and len(node.args) == 1
                    and not (node.args and isinstance(node.args[0], ast.Constant))
                ):
                    name = ast.unparse(receiver)
                    if "tmp" in name or "temporary" in name:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
