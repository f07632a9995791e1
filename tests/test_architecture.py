"""The layout tells the architecture: data flows one way (ingest -> normalise -> plan -> apply ->
report), no module imports one of a later stage, there are no import circles, and the
simulated tenant shares nothing with the product."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bulkphone"
# Each module may import only modules of earlier layers.
LAYERS = [
    {"_text", "_errors", "_model", "_clock", "_logs", "_numbering", "_parallel", "sim", "sim.tenant", "sim.transport"},
    {"_normalize", "_clouds", "_files"},
    {"_ingest", "_retry", "_throttle", "_auth"},
    {"_mapping", "_planner", "_graph"},
    {"_safety", "_executor", "_preflight", "_cells"},
    {"_report", "_journal", "_directory"},
    {"_planfile", "_export", "_audit"},
    {"_pipeline", "_jobs"},
    {"_console", "_runs"},
    {"_demo"},
    {"cli"},
    {"__main__", ""},
]


def imports() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    found.add(".".join(base + [node.module]))
                else:  # from . import pipeline, report
                    found.update(".".join(base + [alias.name]) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bulkphone"):
                found.add(node.module.removeprefix("bulkphone").lstrip("."))
            elif isinstance(node, ast.Import):
                found.update(a.name.removeprefix("bulkphone").lstrip(".") for a in node.names if a.name.startswith("bulkphone"))
        graph[name] = found - {name}
    return graph


def layer(name: str) -> int:
    return next(i for i, members in enumerate(LAYERS) if name in members)


def test_every_module_has_a_layer():
    assert {name for name in imports() if not any(name in members for members in LAYERS)} == set()


def test_no_module_imports_a_later_stage():
    upward = sorted(
        (name, target) for name, targets in imports().items() for target in targets if layer(target) >= layer(name)
        and not (name.startswith("sim") and target.startswith("sim"))
    )
    assert upward == []


def test_the_simulated_tenant_imports_nothing_from_the_product():
    graph = imports()
    assert {name: targets for name, targets in graph.items() if name.startswith("sim") and targets - {"sim.tenant", "sim.transport"}} == {}


def test_no_import_circles():
    graph = imports()
    visiting, done, circles = [], set(), []

    def visit(name):
        if name in visiting:
            circles.append(visiting[visiting.index(name):] + [name])
            return
        if name in done:
            return
        visiting.append(name)
        for target in graph.get(name, ()):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)
    assert circles == []
