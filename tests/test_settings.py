"""Typed settings (issue 17): a stage builds frozen ``<Thing>Settings`` once from its validated params and
hands them to libraries; no library module reads a params dict. Read from the sources' syntax trees.

A name or attribute called ``params`` or ``settings`` (or ending in ``_params`` / ``_settings``) is a
settings dict when a library subscripts it, calls ``get``/``pop``/``items``/... on it or unpacks it with
``**``, or when a library function takes it (or a class holds it) as a ``dict`` / ``Mapping``. The one place a library
may read one is ``from_params`` of a frozen dataclass. Also here: the per-gene cache keys that settings
shape, pinned, since a changed key silently recomputes every user's cache.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from dygenept.config_defaults import merged, section_defaults
from dygenept.import_graph import PACKAGE_DIR
from dygenept.io.artifacts import canonical_json

SETTINGS_NAME = re.compile(r"^(params|settings)$|_(params|settings)$")
MAPPING_TYPES = {"dict", "Dict", "Mapping", "MutableMapping"}
DICT_READERS = {"get", "pop", "setdefault", "items", "keys", "values"}
# The stages and the CLI adapter receive the params dict; everything else is a library.
NOT_LIBRARIES = ("stages/", "cli.py", "__main__.py")

# Modules the evidence engineer is converting to settings dataclasses (issue 21). The lead removes each
# entry when that work lands; an entry whose module no longer reads a params dict fails the test below.
BEING_CONVERTED: set[str] = set()
# Functions that may take a params dict, and why: the one reader every from_params calls, and functions
# that hash or record params without reading a setting from them.
EXEMPT = {
    "settings.py:read_fields": "reads a frozen dataclass's fields by name: what each from_params calls",
    "io/artifacts.py:build_provenance": "writes the params, as given, into the provenance record",
    "io/keyed_store.py:context_digest": "hashes a cache context (params among it) into a key",
    "text_encoders/vector_cache.py:vector_context": "hashes the stage's params with the encoder's identity",
    "facet_backends/cached.py:cache_context": "hashes the stage's params and inputs into the cache context",
    "io/keyed_store.py:without_locations": "drops each cache_dir from params before they are hashed",
    "text/sources/gene_cache.py:settings_key": "hashes what shapes a source's answer into a key",
    # The registry's helpers that rules/common.smk calls on config as the Snakefile parses.
    "registry.py:selected_sources": "the sources a stage's config section selects",
    "registry.py:file_sources": "the selected sources that read a local table (rule inputs)",
    "registry.py:gpus": "how many GPUs a choice's device settings ask the scheduler for",
}


def _settings_name(node: ast.expr) -> str | None:
    name = (
        node.id
        if isinstance(node, ast.Name)
        else node.attr
        if isinstance(node, ast.Attribute)
        else None
    )
    return name if name and SETTINGS_NAME.search(name) else None


def _is_mapping(annotation: ast.expr | None) -> bool:
    """``dict``, ``Mapping[str, Any]``, ``dict | None``, ...: a mapping at the top of the annotation."""
    if isinstance(annotation, ast.BinOp):
        return _is_mapping(annotation.left) or _is_mapping(annotation.right)
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    name = ast.unparse(annotation).split(".")[-1] if annotation is not None else ""
    return name in MAPPING_TYPES


def _is_frozen_dataclass(node: ast.ClassDef) -> bool:
    return any(
        isinstance(decorator, ast.Call)
        and ast.unparse(decorator.func).split(".")[-1] == "dataclass"
        and any(
            k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in decorator.keywords
        )
        for decorator in node.decorator_list
    )


class _Reader(ast.NodeVisitor):
    """Every read of a settings dict, and every function taking one, outside a frozen ``from_params``."""

    def __init__(self, module: str):
        self.module = module
        self.scopes: list[ast.AST] = []
        self.found: list[tuple[str, str, int, str]] = []  # (module, function, line, what)

    def _function(self) -> str:
        """The innermost function or class (what the allow-lists name)."""
        return self.scopes[-1].name if self.scopes else "<module>"  # type: ignore[attr-defined]

    def _allowed(self) -> bool:
        """Inside ``from_params`` defined directly in a frozen dataclass."""
        for outer, inner in zip(self.scopes, self.scopes[1:]):
            if (
                isinstance(outer, ast.ClassDef)
                and isinstance(inner, ast.FunctionDef)
                and inner.name == "from_params"
                and _is_frozen_dataclass(outer)
            ):
                return True
        return False

    def _report(self, node: ast.AST, what: str) -> None:
        if not self._allowed():
            self.found.append((self.module, self._function(), node.lineno, what))

    def _scoped(self, node: ast.AST) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append(node)
        arguments = node.args
        for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs:
            if SETTINGS_NAME.search(arg.arg) and _is_mapping(arg.annotation):
                self._report(node, f"takes {arg.arg}: {ast.unparse(arg.annotation)}")
        self.scopes.pop()
        self._scoped(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        name = _settings_name(node.target)
        in_class = bool(self.scopes) and isinstance(self.scopes[-1], ast.ClassDef)
        if name and in_class and _is_mapping(node.annotation):
            self._report(node, f"holds {name}: {ast.unparse(node.annotation)}")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        name = _settings_name(node.value)
        if name:
            self._report(node, f"indexes {name}[...]")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in DICT_READERS:
            name = _settings_name(node.func.value)
            if name:
                self._report(node, f"calls {name}.{node.func.attr}()")
        for keyword in node.keywords:
            name = keyword.arg is None and _settings_name(keyword.value)
            if name:
                self._report(node, f"unpacks **{name}")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values):
            name = key is None and _settings_name(value)
            if name:
                self._report(node, f"unpacks **{name}")
        self.generic_visit(node)


def settings_dict_reads(package: Path = PACKAGE_DIR) -> list[tuple[str, str, int, str]]:
    """(module, function, line, what) for every read of a settings dict in the package's libraries."""
    found = []
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        if module.startswith(NOT_LIBRARIES):
            continue
        reader = _Reader(module)
        reader.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += reader.found
    return found


def violations(package: Path = PACKAGE_DIR) -> list[str]:
    return [
        f"{module}:{line}: {function} {what}"
        for module, function, line, what in settings_dict_reads(package)
        if module not in BEING_CONVERTED and f"{module}:{function}" not in EXEMPT
    ]


def test_no_library_reads_a_params_dict():
    assert violations() == [], (
        "a library reads a params dict: give it a frozen <Thing>Settings (from_params) that the stage builds"
    )


def test_the_allow_lists_name_only_what_still_reads_a_params_dict():
    found = settings_dict_reads()
    modules = {module for module, *_ in found}
    functions = {f"{module}:{function}" for module, function, *_ in found}
    assert sorted(BEING_CONVERTED - modules) == [], "converted: remove it from BEING_CONVERTED"
    assert sorted(set(EXEMPT) - functions) == [], (
        "gone or no longer taking a dict: remove it from EXEMPT"
    )


def settings_classes(package: Path = PACKAGE_DIR) -> dict[str, ast.ClassDef]:
    """Every ``<Thing>Settings`` class of the package, by ``module:class``."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Settings"):
                found[f"{module}:{node.name}"] = node
    return found


def test_settings_classes_are_frozen_built_from_params_and_hold_no_defaults():
    classes = settings_classes()
    assert len(classes) >= 15
    for name, node in classes.items():
        assert _is_frozen_dataclass(node), f"{name}: not @dataclass(frozen=True)"
        methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
        assert "from_params" in methods, f"{name}: no from_params"
        defaults = [
            ast.unparse(item.target)
            for item in node.body
            if isinstance(item, ast.AnnAssign) and item.value is not None
        ]
        assert defaults == [], f"{name}: defaults live in config/schema.yaml, not here: {defaults}"


def test_read_fields_takes_each_field_by_name_as_the_config_spells_it():
    from dataclasses import dataclass

    from dygenept.settings import read_fields

    @dataclass(frozen=True)
    class Pair:
        rate: float
        names: tuple[str, ...]

    pair = read_fields(Pair, {"rate": 0, "names": ["a"], "unused": 1}, names=("a",))
    assert pair == Pair(0, ("a",)) and isinstance(pair.rate, int)  # 0 stays 0, as in a cache key
    with pytest.raises(KeyError, match="rate"):
        read_fields(Pair, {"names": []})
    with pytest.raises(TypeError):
        read_fields(Pair, {"rate": 1, "names": []}, other=2)


TOY = {
    "__init__.py": "",
    "stages/__init__.py": "",
    "stages/a.py": "def run(inputs, outputs, params):\n    return params['x']\n",
    "cli.py": "params = {}\nvalue = params['x']\n",
    "good.py": """
        from dataclasses import dataclass
        from typing import Any, Mapping

        @dataclass(frozen=True)
        class GoodSettings:
            size: int
            inner: dict

            @classmethod
            def from_params(cls, params: Mapping[str, Any]) -> "GoodSettings":
                return cls(size=params["size"], inner={**params["inner"]})

        def use(settings: GoodSettings, query: dict) -> int:
            return settings.size + query["n"]
        """,
    "bad.py": """
        from dataclasses import dataclass

        @dataclass
        class Loose:
            encoder_params: dict

            @classmethod
            def from_params(cls, params):
                return cls(params["encoder"])

            def model(self):
                return self.encoder_params["model"]

        def make(inputs, model_params: dict[str, int]):
            return model_params.get("depth")

        def call(settings):
            return build(**settings)
        """,
}


@pytest.fixture
def toy(tmp_path):
    for name, source in TOY.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return tmp_path / "pkg"


def test_reads_outside_a_frozen_from_params_are_found_in_a_toy_package(toy):
    assert violations(toy) == [
        "bad.py:6: Loose holds encoder_params: dict",
        "bad.py:10: from_params indexes params[...]",
        "bad.py:13: model indexes encoder_params[...]",
        "bad.py:15: make takes model_params: dict[str, int]",
        "bad.py:16: make calls model_params.get()",
        "bad.py:19: call unpacks **settings",
    ]


# --- cache keys that settings shape stay as they were (values from before the settings dataclasses) ---


def test_network_source_cache_keys_are_unchanged():
    from dygenept.text.sources import cache_key
    from dygenept.text.sources.entrez import EntrezSource
    from dygenept.text.sources.mygene import MyGeneSource
    from dygenept.text.sources.uniprot import UniProtSource

    params = merged(
        section_defaults("knowledge"),
        {
            "mygene": {"url": "https://mygene.info/v3/"},
            "entrez": {"url": "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/", "email": "a@b.org"},
            "uniprot": {"url": "https://rest.uniprot.org/"},
        },
    )
    keys = {
        "mygene": cache_key(MyGeneSource.from_params(params)),
        "entrez": cache_key(EntrezSource.from_params(params, environ={"NCBI_API_KEY": "k"})),
        "uniprot": cache_key(UniProtSource.from_params(params)),
    }
    # A changed key refetches every gene for every user: change these only on purpose.
    assert keys == {
        "mygene": "55a2c8b31baf0fae",
        "entrez": "300dcb4c290cb686",
        "uniprot": "d53d6be5a30d6902",
    }


def test_the_llm_cache_key_sees_the_same_sampling_as_before():
    from dygenept.facet_backends.llm.runner import LlmSettings

    sampling = LlmSettings.from_params(section_defaults("facets")["llm"]).engine.sampling
    # the schema's integer 0 stays 0, not 0.0: canonical JSON (and the key) would change
    assert canonical_json(sampling.to_dict()) == '{"max_tokens":1536,"seed":0,"temperature":0}'
