# Helpers of the stage rules, one section per stage after the shared plumbing. The named choices
# (facet backends, LLM engines, sources, cell encoders, annotation databases) and what each needs come
# from the package's registry (dygenept/registry.py), so a rule never copies a name or a file list.
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
# These modules use the standard library only, so reading them here keeps DAG building fast.
from dygenept.errors import InputError
from dygenept.import_graph import code_files, stage_module
from dygenept.data.screen_requests import (
    parse_requests,
    read_request_file,
    requested_genes,
)
from dygenept import registry
from dygenept.pretrained.lock import describe, read_lock
from dygenept.pretrained.roles import fetch_settings

# --- every stage: its code, its command line, its log and benchmark --------------------------------------


def stage_code(stage):
    """Every source file the stage runs (its import closure in the package, read once from the sources'
    imports): inputs, so that editing any of them reruns the stage and what follows, and nothing else.
    """
    return [str(path) for path in code_files(stage_module(stage), PACKAGE_DIR)]


# Inputs a job waits for but its stage never reads (its code).
NOT_READ = {"code"}


def stage_io(wildcards, input, output):
    """`--in name=path ... --out name=path ...` for every named input and output the stage reads
    (a rule's `params: io=stage_io`; Snakemake calls it with the job's files)."""
    pairs = [
        ("--in", name, path) for name, path in input.items() if name not in NOT_READ
    ]
    pairs += [("--out", name, path) for name, path in output.items()]
    return " ".join(
        f"{flag} {shlex.quote(f'{name}={path}')}" for flag, name, path in pairs
    )


def as_json(value):
    return json.dumps(value, sort_keys=True)


def section(name, *keys):
    """Only the named keys of a config section: a stage reruns only when what it reads changes."""
    return {key: config[name][key] for key in keys}


def with_evidence(settings):
    """A stage's settings plus the GO evidence codes left out everywhere (config 'annotations')."""
    return {**settings, "excluded_evidence": config["annotations"]["excluded_evidence"]}


def stage_gpus(name):
    """The GPUs a job of the rule named ``name`` asks the scheduler for (one helper for every rule), what
    its stage's configured backend runs on (registry.stage_gpus: device auto or cuda asks, cpu asks
    none); a rule that only gathers its stage's shards asks none, and a shard rule (<stage>_shard) asks
    its stage's.
    """
    stage = name.removesuffix(SHARD_SUFFIX)
    if stage == name and sharded(stage):
        return 0
    return registry.stage_gpus(stage, config)


# --- shards: facets_llm, an embedding facets backend and facet_embed as config 'shards' jobs each --------
# A gene's shard is a hash of its Entrez id (dygenept.data.shards); rule <stage>_shard runs the stage's
# work on one shard, and rule <stage> gathers the shards into the artifact one job writes.
SHARDS = config["shards"]
SHARD_SUFFIX = "_shard"


def sharded(stage):
    """Whether ``stage`` runs as SHARDS jobs: the LLM stage with an LLM backend, the facets stage with a
    backend that embeds sentences, the facet encoder always (with more than one shard); no other stage.
    """
    if SHARDS == 1:
        return False
    backend = registry.FACET_BACKENDS[config["facets"]["backend"]]
    shardable = {
        "facets_llm": backend.llm,
        "facets": backend.text_encoder,
        "facet_embed": True,
    }
    return shardable.get(stage, False)


def shard_output(folder, stem, suffix):
    """A shard rule's output, in its gene set's folder: <folder>/shards/<stem><shard>-of-<SHARDS>."""
    return f"{OUT}/{{gene_set}}/{folder}/shards/{stem}{{shard}}-of-{SHARDS}{suffix}"


def shard_parts(stage):
    """Input function of ``stage``'s rule: its shards' outputs (part_0 … part_<n-1>) when sharded."""

    def parts(wildcards):
        if not sharded(stage):
            return {}
        output = getattr(rules, stage + SHARD_SUFFIX).output.part
        return {
            f"part_{shard}": expand(output, gene_set=wildcards.gene_set, shard=shard)[0]
            for shard in range(SHARDS)
        }

    return parts


def llm_gather_group():
    """Sharded, the LLM stage's gathering job and the facets job that reads its records are small CPU
    jobs, one after the other: one Snakemake group, so a cluster runs them as one submission per gene
    set. Unsharded, facets_llm runs the model on a GPU: no group."""
    return "llm_gather" if sharded("facets_llm") else None


def shard_params(settings):
    """A shard rule's params: its stage's settings and which shard."""
    return lambda wildcards: as_json(
        {**settings, "shard": int(wildcards.shard), "shards": SHARDS}
    )


def with_interactions(settings):
    """A stage's settings plus config 'interactions': evaluate and predict score pairs alike."""
    return {**settings, "interactions": config["interactions"]}


def on_train_device(settings):
    """A stage's settings plus the device the trained network runs on (config 'train.device'):
    evaluate and predict run it where training did."""
    return {**settings, "device": config["train"]["device"]}


def log_path(stage):
    return f"{OUT}/logs/{stage}.log"


def benchmark_path(stage):
    return f"{OUT}/benchmarks/{stage}.tsv"


# --- fetch_annotations: the GO and org.Hs.eg SQLite databases --------------------------------------------


def annotation_cache():
    """Where rule fetch_annotations puts each database (config 'annotations.cache_dir')."""
    directory = config["annotations"]["cache_dir"]
    return {
        key: f"{directory}/{database.sqlite_name}"
        for key, database in registry.ANNOTATION_DATABASES.items()
    }


def annotation_db(key):
    """An existing SQLite copy named in config, else the cached one that rule fetch_annotations makes."""
    return ancient(config["annotations"]["sqlite"][key] or annotation_cache()[key])


def annotations_to_fetch():
    """Whether the annotation cache lacks a database that config does not point at elsewhere: only
    then is there a rule that fetches them (rules/annotations.smk)."""
    return any(
        not Path(str(annotation_db(key))).is_file()
        for key in registry.ANNOTATION_DATABASES
    )


# --- fetch_models: the pretrained models the config downloads ----------------------------------------

# Model name (registry PRETRAINED_MODELS) → the params of its fetch_models job: only the models the
# config takes from a hub or a URL (a path, a package or an OpenAI-style server needs none).
FETCHED_MODELS = fetch_settings(config)


def model_manifest(name):
    """Where rule fetch_models writes the manifest of model ``name``."""
    return f"{config['models']['dir']}/{name}.json"


def fetched_model(name):
    """{input name: manifest} for a rule that loads model ``name``, when the config downloads it."""
    if name not in FETCHED_MODELS:
        return {}
    return {registry.PRETRAINED_MODELS[name].input: model_manifest(name)}


def print_locked_models():
    """Say which commit a model whose config revision is null runs at (the lock file's): users see what
    they run, every run."""
    locked = read_lock(config["models"]["lock"])
    for settings in FETCHED_MODELS.values():
        entry = locked.get(settings["repo_id"] or settings["url"])
        if (
            entry is not None
            and settings["source"] == "hub"
            and not settings["revision"]
        ):
            print(
                describe(settings["repo_id"], entry, config["models"]["lock"]),
                file=sys.stderr,
            )


print_locked_models()


# --- fetch_dataset, dataset -------------------------------------------------------------------------------


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


def dataset_params():
    """The dataset section less what only the download needs, with the symbol overrides the genes stage uses."""
    settings = config["dataset"]
    kept = {
        key: value
        for key, value in settings.items()
        if key not in ("download", "cache_dir")
    }
    return {**kept, "symbol_overrides": config["genes"]["symbol_overrides"]}


# --- the gene sets of genes → knowledge → enrich → facets(_llm) → facet_embed ----------------------------
# The chain runs once per gene set, the {gene_set} folder of its files: "model" for the model's genes
# (the perturbed genes and genes.extra: what train and evaluate read) and "screen" for the genes config
# 'predict' asks for that the model's set lacks (predict reads both sets). A screen never changes the
# model's files, so asking for one more gene retrains nothing, and the two chains share no gene: neither
# waits for the other, and `--until <stage>` stops both at that stage.
MODEL_GENE_SET, SCREEN_GENE_SET = "model", "screen"
# The Snakefile's wildcard constraint: {gene_set} is one of the two folder names.
GENE_SET_PATTERN = f"{MODEL_GENE_SET}|{SCREEN_GENE_SET}"


def in_gene_set(pattern, gene_set):
    """A chain rule's output for one gene set."""
    return expand(pattern, gene_set=gene_set)[0]


def in_model_set(pattern):
    return in_gene_set(pattern, MODEL_GENE_SET)


def in_screen_set(pattern):
    return in_gene_set(pattern, SCREEN_GENE_SET)


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


# Read while the workflow is parsed, so that a malformed entry stops the run before any job.
SCREEN_GENES = screen_genes()


def genes_params(gene_set):
    """The genes section and the set; for the screen's, the genes the screen asks for (they must map)."""
    screen = SCREEN_GENES if gene_set == SCREEN_GENE_SET else []
    return {**config["genes"], "gene_set": gene_set, "screen": screen}


def model_set_text(wildcards):
    """The screen's enrich stage describes neighbours from the model's gene text too (a neighbour of a
    screen gene is often a model gene), as it would if the two sets were one."""
    if wildcards.gene_set != SCREEN_GENE_SET:
        return {}
    return {"model_gene_text": in_model_set(rules.knowledge.output.gene_text)}


# --- knowledge, fetch_string, enrich: text and neighbour sources -----------------------------------------


def check_file_sources():
    """A selected file-backed source needs its path: say so before any job is planned."""
    for stage in registry.STAGE_SOURCES:
        for source in registry.file_sources(stage, config[stage]):
            if not config[stage][source]["path"]:
                raise WorkflowError(
                    f"config '{stage}' selects {source} but '{stage}.{source}.path' is empty: give the table's path."
                )


check_file_sources()


def source_stage_params(stage):
    """config[stage] without the settings of sources it does not select (editing those reruns nothing)."""
    chosen = registry.selected_sources(stage, config[stage])
    return registry.without_others(
        config[stage], registry.source_settings(stage), chosen
    )


def knowledge_tables(wildcards):
    """{source: path} of the local tables the knowledge stage reads (a RefSeq summary table): inputs of
    knowledge, and of enrich, which describes neighbours outside the genes with them."""
    return {
        source: config["knowledge"][source]["path"]
        for source in registry.file_sources("knowledge", config["knowledge"])
    }


def string_keep_score():
    """The lowest STRING score the enrich stage may use: its threshold, or the fallback below it."""
    settings = config["enrich"]
    return registry.lowest_string_score(
        settings["string_files"]["min_combined_score"],
        settings["string_fallback_min_score"],
    )


def string_edge_input(wildcards):
    """The STRING edge table the config selects: a local one, or the one rule fetch_string builds."""
    neighbours = config["enrich"]["neighbours"]
    if neighbours == "string_table":
        return {"string_table": config["enrich"]["string_table"]["path"]}
    if neighbours == "string_files":
        return {"string_table": rules.fetch_string.output.edges}
    return {}


# --- facets_llm, facets ---------------------------------------------------------------------------------


def facets_params():
    """The facets section without the LLM settings (rule facets_llm reads them) and the settings of
    backends it does not select; a backend that embeds sentences gets the facet_embed encoder's.
    """
    backend = config["facets"]["backend"]
    owned = {name: entry.settings for name, entry in registry.FACET_BACKENDS.items()}
    settings = registry.without_others(config["facets"], owned, [backend])
    del settings["llm"]
    if registry.FACET_BACKENDS[backend].text_encoder:
        settings["facet_embed"] = config["facet_embed"]
    return with_evidence(settings)


def facet_backend_models():
    """The facet_embed encoder's manifest, for a backend that embeds sentences with it."""
    if registry.FACET_BACKENDS[config["facets"]["backend"]].text_encoder:
        return fetched_model("facet_encoder")
    return {}


def facets_llm_params():
    """The backend and the LLM settings (model and sampling among them), for the facets_llm rule."""
    settings = config["facets"]
    return with_evidence({"backend": settings["backend"], "llm": settings["llm"]})


def facets_llm_inputs(wildcards):
    """The LLM stage's records, when config selects an LLM backend (else the facets rule needs none)."""
    if not registry.FACET_BACKENDS[config["facets"]["backend"]].llm:
        return {}
    outputs = rules.facets_llm.output
    return {
        "llm_records": in_gene_set(outputs.records, wildcards.gene_set),
        "llm_guard": in_gene_set(outputs.guard, wildcards.gene_set),
    }


def llm_prompt_inputs(wildcards):
    """What the LLM stage prompts its model with: the facets, the prompt files and the chat-template
    file config names, if any (editing any of them reruns facets_llm)."""
    settings = config["facets"]
    path = settings["llm"]["chat_template"]
    return {
        "facets_yaml": settings["spec"],
        **{f"prompt_{name}": file for name, file in settings["llm"]["prompts"].items()},
        **({"chat_template": path} if path else {}),
    }


# --- cells ----------------------------------------------------------------------------------------------


def cells_params():
    """config 'cells' with only the chosen encoder's settings: editing another's reruns nothing."""
    settings = config["cells"]
    owned = {name: (name,) for name in registry.CELL_ENCODERS}
    return registry.without_others(settings, owned, [settings["encoder"]])


def cell_encoder_checkpoint(wildcards):
    """The chosen encoder's checkpoint files (scgpt's three), as inputs: a changed checkpoint reruns the
    stage, and their sha256 go into the provenance. Absent files are left to the stage, which says where
    to get them."""
    name = config["cells"]["encoder"]
    encoder = registry.CELL_ENCODERS[name]
    directory = encoder.checkpoint_dir and config["cells"][name][encoder.checkpoint_dir]
    if not directory or name in FETCHED_MODELS:  # fetched: its manifest is the input
        return {}
    files = {key: Path(directory) / file for key, file in encoder.checkpoint.items()}
    return {key: str(path) for key, path in files.items() if path.is_file()}


# --- train, evaluate ------------------------------------------------------------------------------------


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


# --- predict, and the workflow's targets ------------------------------------------------------------------

# What the predict stage reads of config 'predict' (the file reaches it as an input).
PREDICT_SETTINGS = (
    "perturbations",
    "fold_change_threshold",
    "top_genes",
    "nearest_training",
    "top_facets",
    "top_interactions",
)


def screen_checkpoints(wildcards):
    """The main variant's checkpoint for every seed: the screen predicts with them as evaluate does."""
    return checkpoints_of([config["evaluate"]["main_variant"]])


def screen_request_file(wildcards):
    """The perturbation list file, when config 'predict.file' names one: editing it reruns predict.
    A screen asked for (target predict) with nothing to predict stops here, before any job.
    """
    if not screen_entries():
        raise WorkflowError(
            "config 'predict.perturbations' is empty (and 'predict.file' names no perturbation), but the "
            "screen (target predict) was asked for. Fix: list genes or pairs, e.g. predict.perturbations: "
            "[TP53, GATA1+KLF1], or leave out the target 'predict'."
        )
    path = config["predict"]["file"]
    return {"requests": path} if path else {}


def screen_table_input(wildcards):
    """The screen's table, when config 'predict' asks for any perturbation: the report plots its pairs."""
    return {"screen": rules.predict.output.screen} if screen_entries() else {}


def final_targets():
    """The report, and the screen's outputs when config 'predict' asks for any perturbation."""
    targets = list(rules.report.output)
    if screen_entries():
        targets += list(rules.predict.output)
    return targets


# --- before any job ---------------------------------------------------------------------------------------


def check_output_folders():
    """Before any job: a file where an output folder must be, or an output folder (under config
    'outdir') the user cannot write, stops the run with the path and the fix (Snakemake would raise
    from deep inside a job).
    """
    for stage in workflow.rules:
        for pattern in stage.output:
            fixed = Path(str(pattern).split("{")[0] or ".")
            steps = [*reversed(fixed.parents), fixed]
            blocker = next((s for s in steps if s.exists() and not s.is_dir()), None)
            if blocker is not None and blocker != Path(str(pattern)):
                raise WorkflowError(
                    f"{blocker}: a file where a folder must be (rule {stage.name} writes {pattern} "
                    "under it). Fix: move or delete that file, or set config 'outdir' elsewhere."
                )
            if not str(pattern).startswith(OUT):
                continue  # a cache's rule (resources/), in the plan only while its cache is empty
            folder = next(s for s in reversed(steps[:-1] or [Path(".")]) if s.exists())
            if not os.access(folder, os.W_OK):
                raise WorkflowError(
                    f"{folder}: not writable for this user, and rule {stage.name} writes {pattern} "
                    "under it. Fix: make it writable (chmod, chown or group rights), or set config "
                    "'outdir' to a folder you can write."
                )
