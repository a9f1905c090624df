"""The package's import graph, read from the source files (nothing is imported).

It answers two questions. Which files are a stage's code? The stage module's import closure inside the
package: every module it imports, directly or through others, lazy imports inside functions included,
plus the ``__init__.py`` of each package on the way (Python runs those too). The Snakefile makes these
files a rule's inputs, so editing any of them reruns the stage and what depends on it, and nothing else.
Does the code keep its layers? A stage module imports libraries, never another stage; no library
imports a stage; and no import cycle exists.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "dygenept"
STAGES = f"{PACKAGE}.stages"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of a dotted module name of the package, or None where there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    relative = path.relative_to(package_dir).with_suffix("")
    parts = [PACKAGE, *relative.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(package_dir: Path = PACKAGE_DIR) -> list[str]:
    return sorted(module_name(path, package_dir) for path in package_dir.rglob("*.py"))


def _absolute_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


@functools.cache
def _parse(path: Path, modified_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def direct_imports(module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package's modules that ``module`` names in an import statement, anywhere in its source."""
    path = module_file(module, package_dir)
    tree = _parse(
        path, path.stat().st_mtime_ns
    )  # each file is parsed once, and again only once edited
    is_package = path.name == "__init__.py"
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_base(node, module, is_package)
            named.add(base)
            # ``from . import name`` imports the submodule ``name`` where one exists.
            named.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in named if name != module and module_file(name, package_dir) is not None}


def parent_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_closure(module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """``module`` and every package module that importing it runs."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(direct_imports(current, package_dir))
        pending.extend(
            parent for parent in parent_packages(current) if module_file(parent, package_dir)
        )
    return seen


def code_files(module: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of ``module``'s import closure, sorted (paths under ``package_dir`` as given)."""
    return sorted(module_file(name, package_dir) for name in import_closure(module, package_dir))


def stage_module(stage: str) -> str:
    return f"{STAGES}.{stage}"


def stage_names(package_dir: Path = PACKAGE_DIR) -> list[str]:
    return sorted(
        path.stem for path in (package_dir / "stages").glob("*.py") if path.stem != "__init__"
    )


def stage_summary(stage: str, package_dir: Path = PACKAGE_DIR) -> str:
    """The first line of a stage module's docstring."""
    path = module_file(stage_module(stage), package_dir)
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return docstring.splitlines()[0] if docstring else ""


def is_stage(module: str) -> bool:
    return module.startswith(f"{STAGES}.")


def layer_violations(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Imports that break the layer rule: stage → stage, or library → stage."""
    problems = []
    for module in all_modules(package_dir):
        for imported in sorted(direct_imports(module, package_dir)):
            if not is_stage(imported):
                continue
            kind = "stage" if is_stage(module) else "library"
            problems.append(f"{module} ({kind}) imports the stage {imported}")
    return problems


def import_cycles(package_dir: Path = PACKAGE_DIR) -> list[list[str]]:
    """Every cycle of direct imports, each as the list of modules around it (depth-first search)."""
    graph = {
        module: sorted(direct_imports(module, package_dir)) for module in all_modules(package_dir)
    }
    cycles, state = [], {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in graph.get(module, []):
            if state.get(imported) == "open":
                cycles.append(path[path.index(imported) :] + [imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module)
    return cycles


def depth(package_dir: Path = PACKAGE_DIR) -> int:
    """The longest chain of direct imports (the graph must be acyclic)."""
    graph = {module: direct_imports(module, package_dir) for module in all_modules(package_dir)}
    memo: dict[str, int] = {}

    def longest(module: str) -> int:
        if module not in memo:
            memo[module] = 1 + max((longest(imported) for imported in graph[module]), default=0)
        return memo[module]

    return max(longest(module) for module in graph)
