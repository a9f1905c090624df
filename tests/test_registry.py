"""The registry names each choice once: the schema's enums and settings sections, and the package's
tables of implementations, have exactly its keys; what each choice needs is read from real settings."""

from __future__ import annotations

import ast
import sys

import pytest

from dygenept import registry
from dygenept.config_defaults import load_schema, section_defaults
from dygenept.import_graph import module_file

SCHEMA = load_schema()


def schema_node(*path: str) -> dict:
    """The schema of config key ``path`` (each step through ``properties``)."""
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node


def properties(*path: str) -> set[str]:
    return set(schema_node(*path)["properties"])


# --- the schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, choices",
    [
        (("facets", "backend"), registry.FACET_BACKENDS),
        (("cells", "encoder"), registry.CELL_ENCODERS),
        (("enrich", "neighbours"), registry.NEIGHBOUR_SOURCES),
    ],
)
def test_each_enum_of_the_schema_is_the_registrys_keys(path, choices):
    assert schema_node(*path)["enum"] == list(choices)


def test_knowledge_sources_are_the_registrys_keys():
    assert schema_node("knowledge", "sources")["items"]["enum"] == list(registry.KNOWLEDGE_SOURCES)


@pytest.mark.parametrize("key", ["sqlite", "apt_versions", "tarball_urls"])
def test_each_annotation_setting_names_every_database(key):
    assert properties("annotations", key) == set(registry.ANNOTATION_DATABASES)


def test_every_choice_has_the_settings_section_the_registry_says():
    facets = properties("facets")
    for backend in registry.FACET_BACKENDS.values():
        assert set(backend.settings) <= facets
    for name, engine in registry.LLM_ENGINES.items():
        section = properties("facets", "llm", name)
        assert engine.gpu is None or {engine.gpu.device, engine.gpu.count} - {None} <= section
    for name, encoder in registry.CELL_ENCODERS.items():
        section = properties("cells", name)
        assert {encoder.checkpoint_dir} - {None} <= section
        assert encoder.gpu is None or {encoder.gpu.device, encoder.gpu.count} - {None} <= section
    for stage, sources in registry.STAGE_SOURCES.items():
        owned = registry.source_settings(stage)
        for name, source in sources.items():
            assert set(owned[name]) <= properties(stage), (stage, name)
            if source.reads == "file":
                assert "path" in properties(stage, name), (stage, name)


# --- the package's implementations ----------------------------------------------------------------------


def test_every_facet_backend_has_an_implementation():
    from dygenept.facet_backends import BACKENDS
    from dygenept.facet_backends.llm import records

    assert list(BACKENDS) == list(registry.FACET_BACKENDS)
    llm = {name for name, backend in registry.FACET_BACKENDS.items() if backend.llm}
    assert llm == set(registry.LLM_ENGINES)
    assert {name for name, entry in BACKENDS.items() if entry.make is records.make} == llm


def test_every_llm_engine_has_an_implementation():
    from dygenept.facet_backends.llm.engines import ENGINES

    assert set(ENGINES) == set(registry.LLM_ENGINES)


def test_every_cell_encoder_has_an_implementation_reading_the_registrys_files():
    from dygenept.cell_encoders import ENCODERS, scgpt

    assert set(ENCODERS) == set(registry.CELL_ENCODERS)
    assert registry.CELL_ENCODERS["scgpt"].checkpoint == scgpt.CHECKPOINT_FILES


def test_every_text_source_has_an_implementation_with_its_label():
    from dygenept.stages import enrich, knowledge
    from dygenept.text.sources.entrez import EntrezSource
    from dygenept.text.sources.mygene import MyGeneSource
    from dygenept.text.sources.uniprot import UniProtSource

    assert set(knowledge.SOURCES) | set(knowledge.NETWORK_SOURCES) == set(
        registry.KNOWLEDGE_SOURCES
    )
    network = {n for n, s in registry.KNOWLEDGE_SOURCES.items() if s.reads == "network"}
    assert set(knowledge.NETWORK_SOURCES) == network
    for client in (MyGeneSource, EntrezSource, UniProtSource):
        assert client.label == registry.SOURCE_LABELS[client.name]
    assert set(enrich.NEIGHBOUR_SOURCES) == set(registry.NEIGHBOUR_SOURCES)


def test_the_registry_imports_the_standard_library_only():
    """rules/common.smk imports it while the workflow is parsed, in any env."""
    tree = ast.parse(module_file("dygenept.registry").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


# --- what each choice needs, from real settings -------------------------------------------------------------


def test_gpus_follow_each_choices_own_settings():
    llm = section_defaults("facets")["llm"]
    engines = registry.LLM_ENGINES
    assert registry.gpus(engines["vllm"].gpu, {**llm["vllm"], "tensor_parallel_size": 2}) == 2
    assert registry.gpus(engines["openai"].gpu, llm["openai"]) == 0
    transformers = engines["transformers"].gpu
    assert [transformers.gpus({"device": d}) for d in ("cpu", "auto", "cuda:1")] == [0, 0, 1]
    cells = section_defaults("cells")
    assert registry.gpus(registry.CELL_ENCODERS["pca"].gpu, cells["pca"]) == 0
    scgpt = registry.CELL_ENCODERS["scgpt"].gpu
    assert [scgpt.gpus({**cells["scgpt"], "device": d}) for d in ("cpu", "auto", "cuda")] == [
        0,
        1,
        1,
    ]


def test_only_the_chosen_choices_settings_are_kept():
    facets = section_defaults("facets")
    owned = {name: backend.settings for name, backend in registry.FACET_BACKENDS.items()}
    kept = registry.without_others(facets, owned, ["extractive"])
    assert "extractive" in kept and "max_definitions" not in kept and "backend" in kept
    knowledge = {**section_defaults("knowledge"), "sources": ["refseq_tsv", "go"]}
    chosen = registry.selected_sources("knowledge", knowledge)
    kept = registry.without_others(knowledge, registry.source_settings("knowledge"), chosen)
    assert "refseq_tsv" in kept and not {"mygene", "entrez", "uniprot"} & set(kept)
    assert registry.file_sources("knowledge", knowledge) == ["refseq_tsv"]
