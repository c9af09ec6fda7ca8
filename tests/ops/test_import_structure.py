"""The structure holds by itself: no import circle in the apps (imports inside functions
included), every import inside a function says why, run states are written only by the engine,
and the import-linter contracts in pyproject.toml refuse a back-arrow."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = ("dashboard", "campaigns", "batchjobs")


def app_modules() -> dict[str, Path]:
    """Every module of the apps (migrations left out: they are history), by dotted name."""
    modules = {}
    for app in APPS:
        for path in (REPO / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            dotted = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[dotted.removesuffix(".__init__")] = path
    return modules


class ImportEdge:
    def __init__(self, importer: str, imported: str, path: Path, line: int, in_function: bool):
        self.importer, self.imported = importer, imported
        self.path, self.line, self.in_function = path, line, in_function

    def __str__(self) -> str:
        where = "in a function" if self.in_function else "at the top"
        return f"{self.path.relative_to(REPO)}:{self.line} ({where}) -> {self.imported}"


def import_edges() -> list[ImportEdge]:
    """Every import of one app module by another, top-level or inside a function
    (`if TYPE_CHECKING:` blocks left out: they never run)."""
    modules = app_modules()

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in modules:
                return ".".join(parts[:end])
        return None

    edges: list[ImportEdge] = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, depth: int, module=module, path=path, is_package=is_package):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    visit(child, depth)
                return
            inner = depth + isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    targets.append(full if resolve(full) == full else source)
            for target in targets:
                imported = resolve(target)
                if imported and imported != module:
                    edges.append(ImportEdge(module, imported, path, node.lineno, depth > 0))
            for child in ast.iter_child_nodes(node):
                visit(child, inner)

        visit(ast.parse(path.read_text()), 0)
    return edges


def circles(edges: list[ImportEdge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_circle_in_the_apps():
    edges = import_edges()
    found = circles(edges)
    described = [
        "\n".join(
            ["circle: " + ", ".join(circle)]
            + [f"  {edge}" for edge in edges if edge.importer in circle and edge.imported in circle]
        )
        for circle in found
    ]
    assert not found, "\n".join(described)


def test_the_core_imports_no_feature_app():
    back_arrows = [
        str(edge)
        for edge in import_edges()
        if edge.importer.startswith("dashboard") and edge.imported.split(".")[0] != "dashboard"
    ]
    assert back_arrows == []


def test_every_import_inside_a_function_says_why():
    unexplained = []
    for edge in import_edges():
        if not edge.in_function:
            continue
        lines = edge.path.read_text().splitlines()
        line, above = lines[edge.line - 1], lines[edge.line - 2].strip()
        if "#" not in line and not above.startswith("#"):
            unexplained.append(str(edge))
    assert unexplained == [], "say why on the line or the one above, or import at the top"


def test_run_states_are_written_only_by_the_engine():
    """`.update(state=…)` outside dashboard/runs/ would bypass the table of allowed moves."""
    writers = []
    for module, path in app_modules().items():
        if module.startswith("dashboard.runs"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
                and any(keyword.arg == "state" for keyword in node.keywords)
                and ast.unparse(node.func.value).startswith(("Run.objects", "RunAttempt.objects"))
            ):
                writers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert writers == []


@pytest.mark.slow
def test_the_contracts_refuse_a_back_arrow(tmp_path):
    """A planted `import campaigns` in the core and a planted engine circle each fail
    lint-imports, naming the contract; the tree as it is passes."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    for app in APPS:
        shutil.copytree(
            REPO / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__", "migrations")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(lint_imports), "--no-cache"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
        )

    assert run().returncode == 0

    clock = tmp_path / "dashboard" / "clock.py"
    original = clock.read_text()
    clock.write_text(original + "\nimport campaigns.models  # planted\n")
    planted = run()
    assert planted.returncode != 0
    assert "Feature apps plug into the core" in planted.stdout
    assert "BROKEN" in planted.stdout
    clock.write_text(original)

    transitions = tmp_path / "dashboard" / "runs" / "transitions.py"
    transitions.write_text(
        transitions.read_text() + "\nfrom dashboard.runs import tasks  # planted\n"
    )
    planted = run()
    assert planted.returncode != 0
    assert "No import circle in the run engine BROKEN" in planted.stdout
