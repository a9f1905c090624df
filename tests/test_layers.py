"""The package keeps its layers: stages import libraries, never each other; no library imports a stage;
no import cycle. Read from the sources' import statements (nothing is imported)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dygenept import import_graph


def test_no_stage_imports_another_stage_and_no_library_imports_a_stage():
    assert import_graph.layer_violations() == []


def test_the_import_graph_has_no_cycle_and_stays_shallow():
    assert import_graph.import_cycles() == []
    assert import_graph.depth() <= 7


def test_every_stage_module_has_a_documented_run():
    import ast

    for stage in import_graph.stage_names():
        tree = ast.parse(import_graph.module_file(import_graph.stage_module(stage)).read_text())
        runs = [
            node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "run"
        ]
        assert runs, f"stages/{stage}.py has no run(inputs, outputs, params)"
        assert [arg.arg for arg in runs[0].args.args] == ["inputs", "outputs", "params"], stage
        docstring = ast.get_docstring(runs[0]) or ""
        assert "Reads" in docstring and "Writes" in docstring, (
            f"stages/{stage}.py: run's docstring says what it reads and writes"
        )


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "dygenept"
    for name, source in {"__init__.py": "", "stages/__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return package


@pytest.fixture
def toy(tmp_path):
    return write_package(
        tmp_path,
        {
            "lib.py": "import numpy\nfrom .errors import InputError\n",
            "errors.py": "class InputError(ValueError): ...\n",
            "formats/__init__.py": "",
            "formats/table.py": "from ..lib import numpy\n",
            "stages/a.py": "from .. import lib\nfrom ..formats.table import numpy\n\ndef run(inputs, outputs, params):\n    from ..lazy import x\n",
            "lazy.py": "x = 1\n",
            "unused.py": "from . import lib\n",
        },
    )


def test_closure_follows_relative_lazy_and_package_imports(toy):
    closure = import_graph.import_closure("dygenept.stages.a", toy)
    assert closure == {
        "dygenept",
        "dygenept.stages",
        "dygenept.stages.a",
        "dygenept.lib",
        "dygenept.errors",
        "dygenept.formats",
        "dygenept.formats.table",
        "dygenept.lazy",
    }
    files = import_graph.code_files("dygenept.stages.a", toy)
    assert toy / "unused.py" not in files and toy / "formats" / "__init__.py" in files


def test_a_stage_importing_a_stage_and_a_cycle_are_found(toy):
    (toy / "stages" / "b.py").write_text("from . import a\n")
    (toy / "lib2.py").write_text("from .stages.a import run\n")
    (toy / "errors.py").write_text("from .lib import numpy\n")
    assert import_graph.layer_violations(toy) == [
        "dygenept.lib2 (library) imports the stage dygenept.stages.a",
        "dygenept.stages.b (stage) imports the stage dygenept.stages.a",
    ]
    assert import_graph.import_cycles(toy) == [
        ["dygenept.errors", "dygenept.lib", "dygenept.errors"]
    ]
