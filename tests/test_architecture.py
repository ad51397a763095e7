"""The layers of docs/architecture.md, kept by reading the source (ast; nothing is imported).

Every module of textrelu/ has a rank (RANKS); imports run only downward or sideways (same rank),
the import graph has no cycle, and docs/architecture.md names every module file. Imports are
found anywhere in a file, inside functions too: `import textrelu.x.y`, `from textrelu.x import y`
(y a submodule or a name), and relative imports (`from .x import y`, `from . import x`, `from ..x
import y`).
"""

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "textrelu"
DOC = ROOT / "docs" / "architecture.md"

# Module or package (dotted) -> rank; a module takes the rank of its longest listed prefix.
# A new module must be placed here, in its layer (test_every_module_has_a_rank).
RANKS = {
    "textrelu.errors": 0,
    "textrelu.io": 0,
    "textrelu.progress": 0,
    "textrelu.settings": 0,
    "textrelu.jit": 0,
    "textrelu.torchfile": 0,
    "textrelu.nn": 1,
    "textrelu.data": 2,
    "textrelu.checkpoint": 3,
    "textrelu.stages": 4,
    "textrelu.experiments": 5,
    "textrelu.cli": 6,
    "textrelu.api": 6,
    "textrelu.ray": 6,
    "textrelu.__main__": 6,
    "textrelu": 6,  # "textrelu": its __init__.py alone
    # The one special case: textrelu/__init__.py binds __version__ (a constant), __all__ and a
    # lazy __getattr__ that imports the public names of textrelu.api only when asked for (kept
    # so by test_package_init_defines_only_the_version_and_lazy_api_names), so every layer may
    # import __version__ without pulling in anything.
    "textrelu.__version__": 0,
}
LAYERS = {
    0: "base and settings",
    1: "nn",
    2: "data",
    3: "checkpoint",
    4: "stages",
    5: "experiments",
    6: "top",
}
VERSION = "textrelu.__version__"  # `from textrelu import __version__`, as an import target


def module_name(path: Path) -> str:
    """textrelu/nn/model.py -> textrelu.nn.model; textrelu/nn/__init__.py -> textrelu.nn."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def rel(module: str) -> str:
    return MODULES[module].relative_to(ROOT).as_posix()


def rank_of(name: str):
    """The rank of a module (or of a name in it) by its longest prefix in RANKS; the bare
    "textrelu" entry ranks textrelu/__init__.py alone, never a module below it."""
    parts = name.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in RANKS:
            return RANKS[".".join(parts[:n])]
    return RANKS.get(name)


@functools.cache
def tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=rel(module))


def is_package(module: str) -> bool:
    return module in MODULES and MODULES[module].name == "__init__.py"


def defined_names(module: str) -> set:
    """The names a package's __init__.py binds at module level (defs, classes, assignments, imports)."""
    names = set()
    for node in tree(module).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def imported_from(package: str, name: str) -> str:
    """What `from package import name` imports: the submodule package.name (also one not yet
    written: a package's __init__.py that does not bind the name), else the package's own name."""
    full = f"{package}.{name}"
    if full == VERSION:
        return VERSION
    if full in MODULES or (is_package(package) and name not in defined_names(package)):
        return full
    return package


@functools.cache
def imports(module: str) -> list[tuple[str, int]]:
    """(imported textrelu module, line) for every import of a textrelu module anywhere in
    `module`'s file; VERSION for `from textrelu import __version__`."""
    found = []
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            found += [
                (a.name, node.lineno)
                for a in node.names
                if a.name == "textrelu" or a.name.startswith("textrelu.")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package holding this file, up level - 1 packages
                base = module.split(".") if is_package(module) else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            if source != "textrelu" and not source.startswith("textrelu."):
                continue
            found += [(imported_from(source, a.name), node.lineno) for a in node.names if a.name != "*"]
            if any(a.name == "*" for a in node.names):
                found.append((source, node.lineno))
    return sorted(set(found), key=lambda t: (t[1], t[0]))


def import_graph() -> dict:
    """module -> the modules (files) it imports. VERSION is a leaf of its own: importing it runs
    textrelu/__init__.py's top level, which imports nothing (its __getattr__ imports api modules
    only when called, as every other import inside a function of the file counts as an edge of
    "textrelu" here)."""
    graph = {m: sorted({t for t, _ in imports(m)} & MODULES.keys()) for m in MODULES}
    graph[VERSION] = []
    for m in MODULES:
        if any(t == VERSION for t, _ in imports(m)):
            graph[m] = sorted({*graph[m], VERSION})
    return graph


def describe(name: str) -> str:
    rank = rank_of(name)
    where = rel(name) if name in MODULES else name  # VERSION, or a module not written yet
    return f"{where} (rank {rank}, {LAYERS.get(rank, 'no layer')})"


def test_every_module_has_a_rank():
    missing = [rel(m) for m in MODULES if rank_of(m) is None]
    assert not missing, (
        "modules with no layer; place each in RANKS of tests/test_architecture.py "
        f"and in docs/architecture.md: {missing}"
    )


def test_imports_run_only_downward():
    wrong = []
    for module in MODULES:
        rank = rank_of(module)
        for target, line in imports(module):
            target_rank = rank_of(target)
            if target_rank is None:  # a path from before the layers, or a module never placed
                wrong.append(f"{describe(module)} imports {target} at line {line}, which is in no layer")
            elif rank is not None and target_rank > rank:
                wrong.append(f"{describe(module)} imports {describe(target)} at line {line}")
    assert not wrong, "imports that do not run downward:\n" + "\n".join(wrong)


# textrelu/__init__.py's only other statements: OpenMP's waiting threads sleep (benchmarks/contention.py)
ENVIRONMENT = ("import os", "os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')")


def test_package_init_defines_only_the_version_and_lazy_api_names():
    """What lets every layer read __version__: importing textrelu/__init__.py pulls in nothing
    else. Its top level binds __version__ and __all__ (constants) and a function __getattr__,
    and that function imports nothing but modules of textrelu.api (and importlib). Besides, it
    sets OMP_WAIT_POLICY before torch can load (the two statements of ENVIRONMENT)."""
    body = tree("textrelu").body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    allowed = {"__version__", "__all__"}
    others = []
    for node in body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and ast.unparse(node.targets[0]) in allowed
        ):
            if not isinstance(node.value, (ast.Constant, ast.Tuple)) or any(
                not isinstance(n, (ast.Constant, ast.Tuple, ast.Load)) for n in ast.walk(node.value)
            ):
                others.append(ast.unparse(node).splitlines()[0])
        elif isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            continue
        elif ast.unparse(node) not in ENVIRONMENT:
            others.append(ast.unparse(node).splitlines()[0])
    assert not others, (
        "textrelu/__init__.py may bind only __version__ and __all__ (constants) and a lazy "
        f"__getattr__ (every layer imports __version__ as rank 0); found: {others}"
    )
    lazy = [t for t, _ in imports("textrelu")]
    assert lazy and all(t.startswith("textrelu.api.") for t in lazy), (
        f"textrelu/__init__.py's __getattr__ may import only modules of textrelu.api; it imports {lazy}"
    )


def find_cycles(graph: dict) -> list[list[str]]:
    """One cycle per back edge of a depth-first search, each as [a, b, ..., a]."""
    cycles, state, path = [], {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_find_cycles():
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"]}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": ["a"]}) == [["a", "a"]]


def test_import_graph_has_no_cycles():
    cycles = [" -> ".join(rel(m) for m in cycle) for cycle in find_cycles(import_graph())]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_docs_name_every_module():
    named = set(re.findall(r"textrelu/[\w/]+\.py", DOC.read_text(encoding="utf-8")))
    missing = [rel(m) for m in MODULES if rel(m) not in named]
    assert not missing, f"docs/architecture.md does not name {missing}; give each a paragraph in its layer"
