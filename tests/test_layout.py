"""The package's layering: no module of colabkit imports, even lazily, one that imports it back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "colabkit"


def imports_of_every_module() -> dict[str, set[str]]:
    """module -> the colabkit modules it imports (at the top or inside functions)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else module.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{target}.{a.name}" for a in node.names} if node.module is None else {target}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("colabkit"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("colabkit")}
        graph[module] = found
    # keep only edges to modules (a name imported from a package is not a module)
    return {m: {d for d in deps if d in graph} for m, deps in graph.items()}


def test_no_import_circle():
    graph = imports_of_every_module()
    assert {"colabkit.env", "colabkit.loop", "colabkit.board", "colabkit.flags"} <= set(graph)

    def circle_through(start):
        path, todo = {start: None}, [start]
        while todo:
            here = todo.pop()
            for nxt in graph[here]:
                if nxt == start:
                    chain = [here]
                    while chain[-1] != start:
                        chain.append(path[chain[-1]])
                    return [*reversed(chain), start]
                if nxt not in path and nxt != "colabkit":   # the package's own __init__ re-exports
                    path[nxt] = here
                    todo.append(nxt)
        return None

    circles = [c for c in map(circle_through, sorted(graph)) if c]
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_layers_point_down():
    graph = imports_of_every_module()
    assert graph["colabkit.flags"] == set()                          # the leaf everyone may ask
    assert "colabkit.env" not in graph["colabkit.loop"] | graph["colabkit.board"]
    assert "colabkit.loop" in graph["colabkit.env"]                  # Run and setup sit above Loop
