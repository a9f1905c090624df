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
from dygenept.errors import InputError
from dygenept.import_graph import code_files, stage_module
from dygenept.data.screen_requests import (
    parse_requests,
    read_request_file,
    requested_genes,
)
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


# What the predict stage reads of config 'predict' (the file reaches it as an input).
PREDICT_SETTINGS = (
    "perturbations",
    "fold_change_threshold",
    "top_genes",
    "nearest_training",
    "top_facets",
)


def screen_entries():
    """The perturbations config 'predict' asks for: its list, then the lines of its file."""
    settings = config["predict"]
    entries = list(settings["perturbations"])
    if settings["file"]:
        entries += read_request_file(settings["file"])
    return entries


def screen_genes():
    """The genes of the requested perturbations, checked now so that a bad entry stops the run early."""
    entries = screen_entries()
    if not entries:
        return []
    try:
        return requested_genes(parse_requests(entries, "config 'predict'"))
    except InputError as error:
        raise WorkflowError(str(error)) from None


def screen_request_file(wildcards):
    """The perturbation list file, when config 'predict.file' names one: editing it reruns predict."""
    path = config["predict"]["file"]
    return {"requests": path} if path else {}


# The knowledge → enrich → facets → facet_embed chain runs once per gene set, the {gene_set} prefix of its
# files: "" for the model's genes (the perturbed genes and genes.extra: what train and evaluate read) and
# "screen/" for those plus the genes config 'predict' asks for (what predict reads). A screen never
# changes the model's files, so asking for one more gene retrains nothing; the per-gene caches of the
# stages compute only the genes the model's set does not have.
MODEL_GENE_SET, SCREEN_GENE_SET = "", "screen/"
GENE_SET_PATTERN = "(screen/)?"  # the Snakefile's wildcard constraint


def in_gene_set(pattern, gene_set):
    """A chain rule's output for one gene set."""
    return expand(pattern, gene_set=gene_set)[0]


def in_model_set(pattern):
    return in_gene_set(pattern, MODEL_GENE_SET)


def in_screen_set(pattern):
    return in_gene_set(pattern, SCREEN_GENE_SET)


def model_chain_first(wildcards):
    """The screen's facets wait for the model's facet tensor, so that the genes the two sets share come
    from the caches the model's chain filled: a fresh run computes each gene's facets and vectors once,
    in the same batches whatever the scheduling, and the model's tensor never depends on the screen.
    """
    if wildcards.gene_set != SCREEN_GENE_SET:
        return {}
    return {"after": in_model_set(rules.facet_embed.output.tensor)}


# Read while the workflow is parsed, so that a malformed entry stops the run before any job.
SCREEN_GENES = screen_genes()


def genes_params(gene_set):
    """The genes section; for the screen's set, with the genes the screen asks for (they must map)."""
    screen = SCREEN_GENES if gene_set == SCREEN_GENE_SET else []
    return {**config["genes"], "screen": screen}


def final_targets():
    """The report, and the screen's outputs when config 'predict' asks for any perturbation."""
    targets = list(rules.report.output)
    if screen_entries():
        targets += list(rules.predict.output)
    return targets


# Settings that one facet backend alone reads in the facets stage: the other backends' never reach it.
# The LLM settings ('llm') reach only rule facets_llm, whose records the facets stage reads.
FACET_BACKEND_SETTINGS = {
    "go-rules": ("max_definitions",),
    "extractive": ("extractive",),
}


def facets_params():
    """The facets section without the settings of backends it does not select; extractive also embeds
    sentences with the facet_embed encoder, so that encoder is one of its settings."""
    backend = config["facets"]["backend"]
    others = {"llm"} | {
        key
        for name, keys in FACET_BACKEND_SETTINGS.items()
        if name != backend
        for key in keys
    }
    settings = {
        key: value for key, value in config["facets"].items() if key not in others
    }
    if backend == "extractive":
        settings["facet_embed"] = config["facet_embed"]
    return with_evidence(settings)


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


# Inputs a job waits for but its stage never reads (its code; `after`, an ordering of jobs).
NOT_READ = {"code", "after"}


def io_args(input, output):
    """`--in name=path ... --out name=path ...` for every named input and output the stage reads."""
    pairs = [
        ("--in", name, path) for name, path in input.items() if name not in NOT_READ
    ]
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


# Facet backends that run a language model in rule facets_llm (facet_backends/llm); vllm needs a GPU,
# transformers one when its device is CUDA.
LLM_BACKENDS = ("vllm", "openai", "transformers")


def llm_selected():
    return config["facets"]["backend"] in LLM_BACKENDS


def facets_llm_params():
    """The backend and the LLM settings (model and sampling among them), for the facets_llm rule."""
    return with_evidence(
        {"backend": config["facets"]["backend"], "llm": config["facets"]["llm"]}
    )


def facets_llm_inputs(wildcards):
    """The LLM stage's records, when config selects an LLM backend (else the facets rule needs none)."""
    if not llm_selected():
        return {}
    outputs = rules.facets_llm.output
    return {
        "llm_records": in_gene_set(outputs.records, wildcards.gene_set),
        "llm_guard": in_gene_set(outputs.guard, wildcards.gene_set),
    }


def chat_template_input(wildcards):
    """The chat-template file config names for the LLM, if any (editing it reruns facets_llm)."""
    path = config["facets"]["llm"]["chat_template"]
    return {"chat_template": path} if path else {}


def facets_llm_gpus():
    settings = config["facets"]
    backend = settings["backend"]
    on_cuda = settings["llm"]["transformers"]["device"].startswith("cuda")
    if backend == "vllm":
        return settings["llm"]["vllm"]["tensor_parallel_size"]
    return 1 if backend == "transformers" and on_cuda else 0


def facet_embed_gpus():
    """One GPU unless the config pins the encoder to the CPU (device auto uses a GPU when it gets one)."""
    return 0 if config["facet_embed"]["device"] == "cpu" else 1


CELL_ENCODER_SECTIONS = ("pca", "scvi", "scgpt")
# The files cell_encoders.scgpt reads (CHECKPOINT_FILES there; tests/test_cell_encoders.py checks).
SCGPT_FILES = {
    "scgpt_weights": "best_model.pt",
    "scgpt_vocab": "vocab.json",
    "scgpt_args": "args.json",
}


def cells_params():
    """config 'cells' with only the chosen encoder's settings: editing another's reruns nothing."""
    settings = config["cells"]
    return {
        key: value
        for key, value in settings.items()
        if key not in CELL_ENCODER_SECTIONS or key == settings["encoder"]
    }


def scgpt_checkpoint(wildcards):
    """scgpt: the checkpoint's three files, as inputs (a changed checkpoint reruns the stage, and their
    sha256 go into the provenance). Absent files are left to the stage, which says where to get them.
    """
    settings = config["cells"]
    directory = settings["scgpt"]["model_dir"]
    if settings["encoder"] != "scgpt" or not directory:
        return {}
    files = {name: Path(directory) / file for name, file in SCGPT_FILES.items()}
    return {name: str(path) for name, path in files.items() if path.is_file()}


def cells_gpus():
    """One GPU for scgpt and scvi unless their device is cpu; none for pca."""
    settings = config["cells"]
    encoder = settings["encoder"]
    if encoder == "pca" or settings[encoder]["device"] == "cpu":
        return 0
    return 1


def train_params(variant, seed):
    """The train section for one variant (its overrides of train.model) and one seed, with the prior's
    candidates (config 'baselines')."""
    settings = {
        k: v for k, v in config["train"].items() if k not in ("variants", "seeds")
    }
    model = {**settings["model"], **config["train"]["variants"][variant]}
    return {
        **settings,
        "model": model,
        "seed": int(seed),
        "baselines": config["baselines"],
    }


def train_gpus():
    """A GPU for the train rule only when the config asks for CUDA (device auto runs where it lands)."""
    return 1 if config["train"]["device"] == "cuda" else 0


def cross_validated():
    return config["evaluate"]["protocol"] == "cross_validation"


def checkpoints_of(
    variants, stem_pattern=f"{OUT}/train/{{variant}}/seed{{seed}}/model"
):
    """The variants' checkpoints for every seed, as weights__<variant>__<seed> / config__... inputs."""
    inputs = {}
    for variant in variants:
        for seed in config["train"]["seeds"]:
            stem = stem_pattern.format(variant=variant, seed=seed)
            inputs[f"weights__{variant}__{seed}"] = f"{stem}.safetensors"
            inputs[f"config__{variant}__{seed}"] = f"{stem}.json"
    return inputs


def trained_checkpoints(wildcards):
    """Every variant's checkpoint for every seed: evaluate scores them all. Under cross-validation, the
    per-fold checkpoints (one pair of files per variant and seed) and the folds."""
    variants = config["train"]["variants"]
    if not cross_validated():
        return checkpoints_of(variants)
    stem = f"{OUT}/cv/train/{{variant}}/seed{{seed}}/models"
    return {**checkpoints_of(variants, stem), "folds": rules.folds.output.folds}


def evaluate_params():
    """The evaluate section less the protocol's settings (they reach the stage as the folds input), with
    the baselines' candidates."""
    settings = {
        key: value
        for key, value in config["evaluate"].items()
        if key not in ("protocol", "cross_validation")
    }
    return {**settings, "baselines": config["baselines"]}


def screen_checkpoints(wildcards):
    """The main variant's checkpoint for every seed: the screen predicts with them as evaluate does."""
    return checkpoints_of([config["evaluate"]["main_variant"]])
