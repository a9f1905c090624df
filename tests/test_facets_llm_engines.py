"""The ``transformers`` engine with a tiny random Llama built here from a config (its answers are noise:
that exercises validation, retry and failure records end to end), and the ``vllm`` engine on a GPU."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from test_facets_llm import PROMPTS, schema_defaults

from dygenept.facet_backends.base import GeneText
from dygenept.facet_backends.llm.cache import AnswerCache
from dygenept.facet_backends.llm.engines import EngineSettings, make_engine
from dygenept.facet_backends.llm.prompts import answer_schema, load_templates
from dygenept.facet_backends.llm.runner import LlmSettings, run_genes
from dygenept.formats.facet_spec import load_facet_specs

from conftest import ROOT

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
GENES = [
    GeneText("10661", "KLF1", "KLF transcription factor 1", "This gene encodes a hematopoietic-"
             "specific transcription factor that induces high-level expression of adult beta-globin."),
    GeneText("6513", "SLC2A1", "solute carrier family 2 member 1",
             "This gene encodes a major glucose transporter in the mammalian blood-brain barrier."),
]  # fmt: skip


HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def settings() -> dict:
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    return schema_defaults(schema["properties"]["facets"]["properties"]["llm"])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and a byte-level BPE tokenizer trained on the prompt files."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [path.read_text() for path in sorted(PROMPTS.iterdir())]
    tokenizer.train_from_iterator(corpus, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def run_tiny(settings, tiny_model, tmp_path, cache_dir):
    facets = load_facet_specs(ROOT / "resources" / "facets.yaml")
    templates = load_templates(
        PROMPTS / "system.md", PROMPTS / "user.md", PROMPTS / "examples.yaml"
    )
    settings = copy.deepcopy(settings)
    settings.update(model=str(tiny_model), max_tokens=12, max_attempts=2, cache_dir=str(cache_dir))
    llm = LlmSettings.from_params(settings)
    schema = answer_schema(facets, llm.max_chars, llm.min_chars)
    engine = make_engine("transformers", llm.engine, schema)
    cache = AnswerCache(cache_dir)
    try:
        return run_genes(engine, GENES, facets, templates, llm, schema, cache), engine, cache
    finally:
        cache.close()


def test_transformers_noise_is_retried_then_recorded_never_cached(settings, tiny_model, tmp_path):
    result, engine, _ = run_tiny(settings, tiny_model, tmp_path, tmp_path / "cache")
    assert result.answers == {} and result.attempts == 4
    assert [f["symbol"] for f in result.failures] == ["KLF1", "SLC2A1"]
    for failure in result.failures:
        assert failure["reason"].startswith("invalid after 2 attempt(s): the answer is not")
        assert len(failure["raw_outputs"]) == 2
    assert engine.generated_tokens > 0
    assert engine.identity()["engine"].startswith("transformers ")
    reopened = AnswerCache(tmp_path / "cache")
    assert len(reopened) == 0
    reopened.close()
    # greedy decoding: the same noise again, asked again (failures are never cached)
    again, _, _ = run_tiny(settings, tiny_model, tmp_path, tmp_path / "cache")
    assert again.attempts == 4
    assert [f["raw_outputs"] for f in again.failures] == [f["raw_outputs"] for f in result.failures]


def test_a_configured_chat_template_replaces_the_models_own(settings, tiny_model, tmp_path):
    facets = load_facet_specs(ROOT / "resources" / "facets.yaml")
    schema = answer_schema(facets, 600, 20)
    settings = EngineSettings.from_params({**settings, "model": str(tiny_model)})
    own = make_engine("transformers", settings, schema)
    assert own.identity()["chat_template"] == CHAT_TEMPLATE
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    replaced = make_engine("transformers", settings, schema, chat_template=template)
    assert replaced.identity()["chat_template"] == template
    prompt = replaced.tokenizer.apply_chat_template(HELLO, tokenize=False)
    assert prompt == "[user] hello\n"


@pytest.mark.vllm
@pytest.mark.gpu
def test_vllm_writes_valid_facets_with_a_real_model(settings, tmp_path):
    """Where vLLM and a GPU are present: a real model, constrained to the schema, answers every gene.

    DYGENEPT_VLLM_MODEL / DYGENEPT_VLLM_REVISION name the model (default: config's BioMistral)."""
    pytest.importorskip("vllm")
    facets = load_facet_specs(ROOT / "resources" / "facets.yaml")
    templates = load_templates(
        PROMPTS / "system.md", PROMPTS / "user.md", PROMPTS / "examples.yaml"
    )
    settings = copy.deepcopy(settings)
    settings["model"] = os.environ.get("DYGENEPT_VLLM_MODEL", settings["model"])
    settings["revision"] = os.environ.get("DYGENEPT_VLLM_REVISION", settings["revision"])
    if not settings["revision"]:
        pytest.skip("set DYGENEPT_VLLM_REVISION to the model's pinned commit")
    llm = LlmSettings.from_params(settings)
    schema = answer_schema(facets, llm.max_chars, llm.min_chars)
    engine = make_engine("vllm", llm.engine, schema)
    cache = AnswerCache(tmp_path / "cache")
    result = run_genes(engine, GENES, facets, templates, llm, schema, cache)
    assert len(result.answers) + len(result.failures) == len(GENES)
    assert len(result.answers) >= 1
    assert len(cache) == len(result.answers)
