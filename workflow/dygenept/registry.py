"""Every named choice of the pipeline, written once, with what it needs: facet backends, LLM engines,
text and neighbour sources, cell encoders and annotation databases.

Standard library only and no code of the choices themselves: ``rules/common.smk`` imports this module
while the workflow is parsed (to slice each stage's settings, declare its inputs and ask for GPUs), and
the package's tables of implementations (``facet_backends.BACKENDS``, ``facet_backends.llm.engines.ENGINES``,
``cell_encoders.ENCODERS``, the knowledge and enrich stages' sources) are keyed by its names.
``tests/test_registry.py`` checks that the schema's enums and those tables have exactly these keys.

Where a choice has settings of its own, they sit in the config section named after it (``cells.scgpt``,
``facets.llm.vllm``, ``knowledge.mygene``); facet backends list theirs, since ``go-rules`` reads a plain key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# --- GPUs ------------------------------------------------------------------------------------------


def device_gpus(device: str) -> int:
    """1 when a device setting may run on a GPU (``auto``, ``cuda``, ``cuda:N``): the job asks the
    scheduler for one, so that ``auto`` lands where a GPU is; 0 for ``cpu``."""
    return int(device != "cpu")


@dataclass(frozen=True)
class GpuNeed:
    """The GPUs a choice asks for, read from its own settings section.

    ``device``: the key of its device setting (None: it always runs on GPUs); ``count``: the key of
    the setting that says how many (None: one).
    """

    device: str | None
    count: str | None

    def gpus(self, settings: Mapping[str, Any]) -> int:
        if self.device is not None and not device_gpus(settings[self.device]):
            return 0
        return 1 if self.count is None else int(settings[self.count])


def gpus(need: GpuNeed | None, settings: Mapping[str, Any]) -> int:
    """The GPUs a choice asks for (none without a need)."""
    return 0 if need is None else need.gpus(settings)


# The stages that run the DyGenePT network, on config 'train.device'.
NETWORK_STAGES = ("train", "train_folds", "evaluate", "predict")


def stage_gpus(stage: str, config: Mapping[str, Any]) -> int:
    """The GPUs a stage's job asks for under a validated config: what its configured backend runs on.

    The LLM engine (``facets_llm``), the facet encoder (``facet_embed``, and ``facets`` with a backend
    that embeds sentences with it), the cell encoder (``cells``) and the network (``train``,
    ``evaluate`` and ``predict``, all on config 'train.device'); every other stage none.
    """
    facets = config["facets"]
    if stage == "facets_llm":
        engine = LLM_ENGINES.get(facets["backend"])
        return 0 if engine is None else gpus(engine.gpu, facets["llm"][facets["backend"]])
    if stage == "facets":
        embeds = FACET_BACKENDS[facets["backend"]].text_encoder
        return device_gpus(config["facet_embed"]["device"]) if embeds else 0
    if stage == "facet_embed":
        return device_gpus(config["facet_embed"]["device"])
    if stage == "cells":
        name = config["cells"]["encoder"]
        return gpus(CELL_ENCODERS[name].gpu, config["cells"][name])
    if stage in NETWORK_STAGES:
        return device_gpus(config["train"]["device"])
    return 0


def without_others(
    section: Mapping[str, Any], owned: Mapping[str, Iterable[str]], chosen: Iterable[str]
) -> dict[str, Any]:
    """A config section less the keys that only unchosen choices read (``owned``: choice → its keys),
    so that editing another choice's settings reruns nothing."""
    chosen = set(chosen)
    mine = {key for name, keys in owned.items() if name in chosen for key in keys}
    others = {key for name, keys in owned.items() if name not in chosen for key in keys} - mine
    return {key: value for key, value in section.items() if key not in others}


# --- LLM engines (config 'facets.backend' among them; settings in 'facets.llm.<name>') ---------------


@dataclass(frozen=True)
class LlmEngineSpec:
    gpu: GpuNeed | None  # read from config 'facets.llm.<name>'
    loads_weights: bool  # it loads the model itself (rule fetch_models downloads it), not a server


LLM_ENGINES: dict[str, LlmEngineSpec] = {
    "vllm": LlmEngineSpec(GpuNeed(device=None, count="tensor_parallel_size"), loads_weights=True),
    "openai": LlmEngineSpec(None, loads_weights=False),  # a server elsewhere does the work
    "transformers": LlmEngineSpec(GpuNeed(device="device", count=None), loads_weights=True),
}


# --- facet backends (config 'facets.backend') --------------------------------------------------------


@dataclass(frozen=True)
class FacetBackendSpec:
    """``settings``: keys of config 'facets' that this backend alone reads in the facets stage (an LLM
    backend's, 'facets.llm', reach rule facets_llm only);
    ``llm``: the backend is the LLM engine of the same name, run in rule facets_llm;
    ``text_encoder``: it embeds sentences with the facet_embed encoder, whose settings are then its own."""

    settings: tuple[str, ...]
    llm: bool
    text_encoder: bool


FACET_BACKENDS: dict[str, FacetBackendSpec] = {
    "go-rules": FacetBackendSpec(settings=("max_definitions",), llm=False, text_encoder=False),
    "extractive": FacetBackendSpec(settings=("extractive",), llm=False, text_encoder=True),
    **{name: FacetBackendSpec(settings=(), llm=True, text_encoder=False) for name in LLM_ENGINES},
}


# --- text sources (config 'knowledge.sources') and neighbour sources ('enrich.neighbours') ------------


@dataclass(frozen=True)
class SourceSpec:
    """Where a stage's text comes from. ``reads``: ``annotations`` (the GO databases; no settings of its
    own), ``file`` (a local table at its section's ``path``: an input of the rule), ``network`` (a web
    service; answers cached per gene) or ``download`` (files a rule fetches once). ``label``: what a
    knowledge source's sentences give as their ``Sentence.source``."""

    reads: Literal["annotations", "file", "network", "download"]
    label: str | None


KNOWLEDGE_SOURCES: dict[str, SourceSpec] = {
    "go": SourceSpec("annotations", "GO"),
    "refseq_tsv": SourceSpec("file", "RefSeq"),
    "mygene": SourceSpec("network", "NCBI Gene (MyGene.info)"),
    "entrez": SourceSpec("network", "NCBI Gene (E-utilities)"),
    "uniprot": SourceSpec("network", "UniProtKB/Swiss-Prot"),
}
NEIGHBOUR_SOURCES: dict[str, SourceSpec] = {
    "go_similarity": SourceSpec("annotations", None),
    "string_table": SourceSpec("file", None),
    "string_files": SourceSpec("download", None),  # rule fetch_string
}
# The stages that take sources, with theirs.
STAGE_SOURCES: dict[str, dict[str, SourceSpec]] = {
    "knowledge": KNOWLEDGE_SOURCES,
    "enrich": NEIGHBOUR_SOURCES,
}
# The ``Sentence.source`` each knowledge source writes.
SOURCE_LABELS: dict[str, str] = {
    name: source.label for name, source in KNOWLEDGE_SOURCES.items() if source.label
}
# Sentences that describe a gene's function in prose (not its name line or GO term list).
PROSE_LABELS = frozenset(SOURCE_LABELS.values()) - {SOURCE_LABELS["go"]}


def selected_sources(stage: str, settings: Mapping[str, Any]) -> list[str]:
    """The sources a stage's config section selects: knowledge lists them, enrich names one."""
    return list(settings["sources"]) if stage == "knowledge" else [settings["neighbours"]]


def source_settings(stage: str) -> dict[str, tuple[str, ...]]:
    """Each source of the stage with the settings section it alone reads (none for annotations)."""
    return {
        name: () if source.reads == "annotations" else (name,)
        for name, source in STAGE_SOURCES[stage].items()
    }


def file_sources(stage: str, settings: Mapping[str, Any]) -> list[str]:
    """The selected sources of the stage that read a local table."""
    chosen = selected_sources(stage, settings)
    return [name for name in chosen if STAGE_SOURCES[stage][name].reads == "file"]


def lowest_string_score(threshold: int, fallback: int | None) -> int:
    """The lowest STRING combined score the enrich stage may use: its threshold, or the fallback below it."""
    return threshold if fallback is None else min(threshold, fallback)


# --- cell encoders (config 'cells.encoder'; settings in 'cells.<name>') --------------------------------


@dataclass(frozen=True)
class CellEncoderSpec:
    """``gpu``: read from config 'cells.<name>'; ``checkpoint``: the files (input name → file name) the
    encoder reads from the directory its ``checkpoint_dir`` setting names, declared as rule inputs."""

    gpu: GpuNeed | None
    checkpoint_dir: str | None
    checkpoint: Mapping[str, str]


CELL_ENCODERS: dict[str, CellEncoderSpec] = {
    "pca": CellEncoderSpec(gpu=None, checkpoint_dir=None, checkpoint={}),
    "scvi": CellEncoderSpec(
        gpu=GpuNeed(device="device", count=None),
        checkpoint_dir=None,
        checkpoint={},
    ),
    "scgpt": CellEncoderSpec(
        gpu=GpuNeed(device="device", count=None),
        checkpoint_dir="model_dir",
        checkpoint={
            "scgpt_weights": "best_model.pt",
            "scgpt_vocab": "vocab.json",
            "scgpt_args": "args.json",
        },
    ),
}


# --- pretrained models (rule fetch_models downloads them; the manifest is <models.dir>/<name>.json) ------


@dataclass(frozen=True)
class PretrainedModelSpec:
    key: str  # the config section of the model's settings
    local_key: str  # the key that names a local directory instead of a download
    input: str  # the input name its manifest has in the rules that load it


PRETRAINED_MODELS: dict[str, PretrainedModelSpec] = {
    "facet_encoder": PretrainedModelSpec(
        "facet_embed.encoder", "facet_embed.encoder.path", "encoder_model"
    ),
    "llm": PretrainedModelSpec("facets.llm", "facets.llm.model", "llm_model"),
    "scgpt": PretrainedModelSpec("cells.scgpt", "cells.scgpt.model_dir", "scgpt_model"),
}


# --- annotation databases (config 'annotations.sqlite' / 'apt_versions' / 'tarball_urls' keys) ---------


@dataclass(frozen=True)
class AnnotationDatabase:
    """A Bioconductor annotation package's SQLite file: its name (in the cache and in the package's
    extdata), the Debian and Bioconductor packages that carry it, and tables a real copy has."""

    sqlite_name: str
    debian_name: str
    bioc_name: str
    tables: frozenset[str]


ANNOTATION_DATABASES: dict[str, AnnotationDatabase] = {
    "org_hs_eg": AnnotationDatabase(
        "org.Hs.eg.sqlite",
        "r-bioc-org.hs.eg.db",
        "org.Hs.eg.db",
        frozenset({"genes", "gene_info", "alias", "go_bp"}),
    ),
    "go": AnnotationDatabase(
        "GO.sqlite", "r-bioc-go.db", "GO.db", frozenset({"go_term", "go_bp_offspring"})
    ),
}
