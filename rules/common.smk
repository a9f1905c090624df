# Helpers shared by the stage rules: paths, the stage CLI, and how each rule's inputs reach it.
import json
import os
import shlex
import sys
from pathlib import Path

OUT = config["outdir"]
# Relative to the working directory, so that moving the checkout does not look like a change of code.
PACKAGE_DIR = Path(os.path.relpath(Path(workflow.basedir) / "workflow" / "dygenept"))
# The package runs from the source tree, so the same command works in the project's venv and in the
# per-stage conda envs (which carry only third-party dependencies).
CLI = f"PYTHONPATH={shlex.quote(str(PACKAGE_DIR.parent))}${{PYTHONPATH:+:$PYTHONPATH}} python -m dygenept"
sys.path.insert(0, str(PACKAGE_DIR.parent))
# Both modules use the standard library only, so reading them here keeps DAG building fast.
from dygenept.import_graph import code_files, stage_module
from dygenept.sources import (
    FILE_SOURCES,
    SOURCE_SECTIONS,
    lowest_string_score,
    selected_sources,
)

SQLITE_FILES = {"org_hs_eg": "org.Hs.eg.sqlite", "go": "GO.sqlite"}


def stage_code(stage):
    """Every source file the stage runs (its import closure in the package, read once from the sources'
    imports): inputs, so that editing any of them reruns the stage and what follows, and nothing else.
    """
    return [str(path) for path in code_files(stage_module(stage), PACKAGE_DIR)]


def annotation_db(key):
    """An existing SQLite copy named in config, else the cached one that rule fetch_annotations makes."""
    existing = config["annotations"]["sqlite"][key]
    path = existing or f"{config['annotations']['cache_dir']}/{SQLITE_FILES[key]}"
    return ancient(path)


def check_file_sources():
    """A selected file-backed source needs its path: say so before any job is planned."""
    for stage, source in FILE_SOURCES.items():
        if (
            source in selected_sources(stage, config[stage])
            and not config[stage][source]["path"]
        ):
            raise WorkflowError(
                f"config '{stage}' selects {source} but '{stage}.{source}.path' is empty: give the table's path."
            )


check_file_sources()


def dataset_h5ad():
    """The user's file (source h5ad), else the copy rule fetch_dataset downloads."""
    settings = config["dataset"]
    if settings["source"] == "h5ad":
        if not settings["path"]:
            raise WorkflowError(
                "config 'dataset.source' is h5ad but 'dataset.path' is empty: give the .h5ad file."
            )
        return settings["path"]
    if not settings["download"]["url"]:
        raise WorkflowError(
            f"config 'dataset.source' is {settings['source']} but 'dataset.download.url' is empty."
        )
    return rules.fetch_dataset.output.h5ad


def dataset_optional_inputs(wildcards):
    """The user's split JSON and a cell-encoder vocabulary, when the config names them."""
    settings = config["dataset"]
    inputs = {}
    if settings["split"]["kind"] == "file":
        if not settings["split"]["path"]:
            raise WorkflowError(
                "config 'dataset.split.kind' is file but 'dataset.split.path' is empty."
            )
        inputs["split_file"] = settings["split"]["path"]
    if settings["vocabulary"]:
        inputs["vocabulary"] = settings["vocabulary"]
    return inputs


def source_stage_params(stage):
    """config[stage] without the settings of sources it does not select (editing those reruns nothing)."""
    chosen = selected_sources(stage, config[stage])
    settings = {
        key: value
        for key, value in config[stage].items()
        if key not in SOURCE_SECTIONS[stage] or key in chosen
    }
    return settings


def optional_source_inputs(stage, source):
    """{source: path} when the stage's config selects a file-backed source, else nothing."""
    if source not in selected_sources(stage, config[stage]):
        return {}
    return {source: config[stage][source]["path"]}


def section(name, *keys):
    """Only the named keys of a config section: a stage reruns only when what it reads changes."""
    return {key: config[name][key] for key in keys}


def with_evidence(settings):
    """A stage's settings plus the GO evidence codes left out everywhere (config 'annotations')."""
    return {**settings, "excluded_evidence": config["annotations"]["excluded_evidence"]}


def dataset_params():
    """The dataset section less what only the download needs, with the symbol overrides the genes stage uses."""
    settings = config["dataset"]
    kept = {
        key: value
        for key, value in settings.items()
        if key not in ("download", "cache_dir")
    }
    return {**kept, "symbol_overrides": config["genes"]["symbol_overrides"]}


def as_json(value):
    return json.dumps(value, sort_keys=True)


def io_args(input, output):
    """`--in name=path ... --out name=path ...` for every named input and output but the stage's code."""
    pairs = [("--in", name, path) for name, path in input.items() if name != "code"]
    pairs += [("--out", name, path) for name, path in output.items()]
    return " ".join(
        f"{flag} {shlex.quote(f'{name}={path}')}" for flag, name, path in pairs
    )


def log_path(stage):
    return f"{OUT}/logs/{stage}.log"


def benchmark_path(stage):
    return f"{OUT}/benchmarks/{stage}.tsv"


def string_edge_input(wildcards):
    """The STRING edge table the config selects: a local one, or the one rule fetch_string builds."""
    neighbours = config["enrich"]["neighbours"]
    if neighbours == "string_table":
        return {"string_table": config["enrich"]["string_table"]["path"]}
    if neighbours == "string_files":
        return {"string_table": rules.fetch_string.output.edges}
    return {}


def neighbour_text_input(wildcards):
    """A RefSeq summary table, when the knowledge stage reads one, also describes neighbours outside the genes."""
    return optional_source_inputs("knowledge", FILE_SOURCES["knowledge"])


def string_keep_score():
    """The lowest STRING score the enrich stage may use: its threshold, or the fallback below it."""
    settings = config["enrich"]
    return lowest_string_score(
        settings["string_files"]["min_combined_score"],
        settings["string_fallback_min_score"],
    )


def train_params(variant, seed):
    """The train section for one variant (its overrides of train.model) and one seed."""
    settings = {
        k: v for k, v in config["train"].items() if k not in ("variants", "seeds")
    }
    model = {**settings["model"], **config["train"]["variants"][variant]}
    return {**settings, "model": model, "seed": int(seed)}


def train_gpus():
    """A GPU for the train rule only when the config asks for CUDA (device auto runs where it lands)."""
    return 1 if config["train"]["device"] == "cuda" else 0


def trained_checkpoints(wildcards):
    """Every variant's checkpoint for every seed, as evaluate's weights__<variant>__<seed> inputs."""
    inputs = {}
    for variant in config["train"]["variants"]:
        for seed in config["train"]["seeds"]:
            stem = f"{OUT}/train/{variant}/seed{seed}/model"
            inputs[f"weights__{variant}__{seed}"] = f"{stem}.safetensors"
            inputs[f"config__{variant}__{seed}"] = f"{stem}.json"
    return inputs
