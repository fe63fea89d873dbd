"""The import graph of hapta/ (docs/architecture.md): no circle, every module imports only its own layer or the
ones below it, so that nothing below the gateway reaches for it, and one service package reaches into another only
where LATERAL says so."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hapta"

# Bottom to top. A module's layer is that of its first part under hapta/.
LAYERS = [
    ("cores", {"protocol", "query", "principal", "catalog", "config", "settings", "models", "access", "metrics",
               "typescript", "clock", "routes"}),
    ("adapters", {"store", "auth", "isolation"}),
    ("workers", {"workers"}),
    ("services", {"records", "live", "files", "hooks", "rules", "limits", "functions", "admin"}),
    ("handlers", {"ops"}),
    ("root", {"gateway", "cli", "develop", "__main__", "client", "reconnect", "__init__"}),
]


# The services' imports of each other, each one a dependency the composition root cannot hand over in a
# constructor (a type, a value, an exception) or a part one service is built from. Anything else is passed in.
LATERAL = {
    ("records", "hooks"),     # a write runs the collection's hooks (hooks.service.Hooks, hooks.api.Context)
    ("files", "hooks"),       # an upload runs before_upload (hooks.api.Context)
    ("files", "records"),     # a file belongs to a record: the records' reads and writes
    ("live", "records"),      # a subscription reads and filters records as records.list does
    ("live", "limits"),       # what a principal may hold of subscriptions (quota), and its key
    ("admin", "live"),        # the dashboard's view of connections and channels
    ("admin", "limits"),      # the dashboard's view of rate limits
    ("functions", "live"),    # ctx.publish: a channel the bus cannot reach right now (BusDown); ctx.transaction's
                              # messages, checked, as a transaction writes them (live.channels.Held)
    ("functions", "limits"),  # a function caller's share is keyed by its address, as limits key it
    ("rules", "hooks"),       # hapta.rules: the name apps import the hooks' API by
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The hapta modules `name` imports (at run time and under TYPE_CHECKING alike)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {target for target in found if target in modules and target != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(name: str) -> int:
    first = name.split(".")[1] if "." in name else "__init__"
    for number, (_, members) in enumerate(LAYERS):
        if first in members:
            return number
    raise AssertionError(f"{name} belongs to no layer: add hapta/{first} to LAYERS (and docs/architecture.md)")


def test_every_module_imports_only_its_layer_or_below():
    upward = [f"{name} ({LAYERS[_layer(name)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
              for name, targets in _graph().items() for target in targets if _layer(target) > _layer(name)]
    assert not upward, "\n".join(sorted(upward))


def test_services_reach_into_each_other_only_where_listed():
    services = dict(LAYERS)["services"]
    found = {(name.split(".")[1], target.split(".")[1]) for name, targets in _graph().items() for target in targets
             if "." in name and "." in target and name.split(".")[1] in services
             and target.split(".")[1] in services and name.split(".")[1] != target.split(".")[1]}
    assert not found - LATERAL, f"add to LATERAL, saying why, or pass it in: {sorted(found - LATERAL)}"
    assert not LATERAL - found, f"no longer imported: take out of LATERAL {sorted(LATERAL - found)}"


def test_nothing_below_the_gateway_imports_it():
    offenders = [name for name, targets in _graph().items()
                 if not name.startswith(("hapta.gateway", "hapta.cli")) and any(t.startswith("hapta.gateway")
                                                                                for t in targets)]
    assert not offenders


def test_the_import_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}   # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                return path + [name, target]
            if target not in state:
                found = walk(target, path + [name])
                if found:
                    return found
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            circle = walk(name, [])
            assert circle is None, " -> ".join(circle[circle.index(circle[-1]):])


# Handles whose documented fields their owner sets while using them (not services): (file, target) pairs.
SET_THROUGH = {
    ("hapta/files/transfers.py", "self.writer.content_type"),   # the type an upload's content turned out to be
}


def test_no_object_is_wired_through_another_after_construction():
    """No code sets an attribute of an object it reaches through another (`self.live.realtime.sent = ...`,
    `gateway.files.public_url = ...`): a service gets what it uses in its constructor, or asks a callable it was
    given there, so that wiring cannot hide a cycle."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for item in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                    if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Attribute):
                        found.add((str(path.relative_to(PACKAGE.parent)), ast.unparse(item)))
    assert found == SET_THROUGH, sorted(found ^ SET_THROUGH)
