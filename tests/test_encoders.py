"""Text encoders: the real packaged all-MiniLM-L6-v2, and a tiny BERT built from a config (as PubMedBERT
loads); token-budget batching, truncation, NONE/mask handling, and the CPU numbers of the previous code."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import yaml

from dygenept.errors import InputError
from dygenept.stages import facet_embed
from dygenept.text_encoders import (
    EncoderError,
    EncoderModelSettings,
    TextEncoder,
    TextEncoderSettings,
    plan_batches,
    resolve_model_files,
)

from conftest import ROOT

SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


def schema_defaults(node: dict):
    """The defaults config/schema.yaml fills in for an object node (as Snakemake's validate does)."""
    if node.get("type") == "object" and "properties" in node:
        return {key: schema_defaults(child) for key, child in node["properties"].items()}
    return node.get("default")


def facet_embed_params(**encoder) -> dict:
    params = schema_defaults(SCHEMA["properties"]["facet_embed"])
    params["encoder"].update(encoder)
    return params


def encoder_from(params: dict) -> TextEncoder:
    """The encoder the facet_embed stage builds from these params."""
    return TextEncoder.from_settings(TextEncoderSettings.from_params(params))


def model_files(params: dict):
    return resolve_model_files(EncoderModelSettings.from_params(params["encoder"]))


MINILM = {"max_length": 256}  # the schema's default encoder is the packaged MiniLM
SENTENCES = [
    "PLK4 controls centriole duplication during the cell cycle.",
    "Kinase.",
    "SLC38A2 transports neutral amino acids such as glutamine across the plasma membrane.",
    "PLK4 regulates centriole replication in mitosis.",
    "CEBPA is a transcription factor that coordinates proliferation arrest and differentiation.",
]


def facet_like_texts(count: int, seed: int = 0) -> list[str]:
    """Facet paragraphs like go-rules writes: a few to a few hundred tokens, some over 256."""
    rng = random.Random(seed)
    return [
        f"Gene {i} in {rng.choice(['cell cycle', 'metabolism', 'transport'])}: "
        + " ".join(rng.choice(SENTENCES) for _ in range(rng.choice([1, 2, 4, 8, 16, 24])))
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def minilm():
    return encoder_from(facet_embed_params(**MINILM))


def test_real_minilm_is_the_pinned_model(minilm):
    assert minilm.dim == 384 and minilm.pooling == "mean"
    assert minilm.files.sha256 == facet_embed_params()["encoder"]["sha256"]
    assert minilm.device == "cpu" and minilm.precision == "fp32"  # auto on a machine without CUDA


def previous_encode(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """The encoder as it was before token-budget batching (commit ecbe109): texts sorted by characters,
    32 per batch, padded by the tokenizer, mean-pooled and normalised in float32."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    result = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            tokens = encoder.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = encoder.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            result[batch] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return result


@pytest.mark.slow  # heavy: 120 long texts encoded twice, once by the code before token-budget batching
def test_cpu_path_gives_the_previous_numbers(minilm):
    texts = facet_like_texts(120)
    now, before = minilm.encode(texts), previous_encode(minilm, texts)
    assert minilm.report.truncated > 0  # the comparison covers cut texts too
    assert np.abs(now - before).max() < 1e-5
    # In the float16 artifact: equal, or one unit in the last place where float32 noise crosses a
    # rounding edge (each text is now padded to its own length, the previous code to its batch's longest).
    now16, before16 = now.astype(np.float16), before.astype(np.float16)
    ulps = np.abs(now16.view(np.int16).astype(np.int32) - before16.view(np.int16).astype(np.int32))
    assert ulps.max() <= 1 and (ulps == 0).mean() > 0.995


def test_output_is_identical_whatever_the_input_order(minilm):
    texts = facet_like_texts(60, seed=1)
    shuffled = texts[:]
    random.Random(2).shuffle(shuffled)
    first, second = minilm.encode(texts), minilm.encode(shuffled + texts[:5])  # duplicates too
    position = {text: i for i, text in enumerate(texts)}
    assert np.array_equal(second[: len(texts)], first[[position[t] for t in shuffled]])
    assert np.array_equal(second[len(texts) :], first[:5])
    assert minilm.report.texts == len(set(texts))  # each distinct text encoded once


def test_semantics_and_unit_length(minilm):
    vectors = minilm.encode(SENTENCES)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 3] > similarity[0, 2]  # two sentences on PLK4 and centrioles are closer


def test_truncation_is_counted_and_cuts_at_max_length(minilm):
    long = "PLK4 regulates centriole replication in mitosis. " * 60  # ~600 tokens
    vectors = minilm.encode([long, long + "An ending far beyond the cut.", "Kinase."])
    assert minilm.report.truncated == 2 and minilm.report.texts == 3
    assert np.array_equal(vectors[0], vectors[1])  # both cut to the same 256 tokens
    assert minilm.report.tokens == 256 + 256 + len(minilm.tokenizer("Kinase.")["input_ids"])


def test_token_budget_batches_of_one_padded_length():
    lengths = [5, 300, 20, 300, 7, 12]
    batches = plan_batches(lengths, 640, 512, keys=list("abcdef"))
    assert [b.indices for b in batches] == [(1, 3), (2,), (5,), (0, 4)]  # longest first
    assert [b.padded_length for b in batches] == [304, 24, 16, 8]  # each text's own, to 8 tokens
    assert all(b.padded_tokens <= 640 for b in batches)
    assert plan_batches([900, 3], 640, 1024)[0].indices == (0,)  # too long for the budget: alone
    assert plan_batches([510, 3], 640, 510)[0].padded_length == 510  # never past max_length
    assert sorted(i for b in plan_batches(lengths, 64, 512) for i in b.indices) == list(range(6))


def test_a_texts_vector_is_the_same_whatever_it_is_batched_with(minilm):
    """On the CPU, bit for bit: another token budget, or a subset of the texts (what a cache leaves)."""
    small = encoder_from({**facet_embed_params(**MINILM), "tokens_per_batch": 300})
    texts = facet_like_texts(20, seed=3)
    vectors = small.encode(texts)
    assert small.report.batches > 5
    reference = minilm.encode(texts)
    assert np.array_equal(vectors, reference)
    assert np.array_equal(minilm.encode(texts[::3]), reference[::3])


def test_a_changed_model_is_refused():
    with pytest.raises(EncoderError, match="differs from config 'facet_embed.encoder.sha256'"):
        model_files(facet_embed_params(sha256="0" * 64))


def test_missing_package_names_the_fix():
    with pytest.raises(EncoderError, match="pip install"):
        model_files(facet_embed_params(package="no_such_model_package_xyz"))


def test_a_hub_model_needs_a_pinned_commit():
    params = facet_embed_params(package=None, hub_id="org/model", revision="main")
    with pytest.raises(EncoderError, match="not a pinned commit"):
        model_files(params)


def test_cuda_without_a_gpu_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="no CUDA device"):
        encoder_from({**facet_embed_params(**MINILM), "device": "cuda"})


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "gene", "kinase", "cell", "cycle"]
VOCAB += ["transport", "the", "."]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A BERT built from a config, saved as the Hub's BERT models are (config, vocab, weights)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)  # model.safetensors
    return path


def tiny_params(path, **encoder):
    return facet_embed_params(
        path=str(path), package=None, hub_id=None, revision=None, sha256=None, **encoder
    )


def test_tiny_bert_with_cls_pooling(tiny_bert):
    encoder = encoder_from(tiny_params(tiny_bert, pooling="cls", normalize=False, max_length=16))
    vectors = encoder.encode(["gene kinase", "the cell cycle .", "transport"])
    assert vectors.shape == (3, 32) and encoder.pooling == "cls"
    assert not np.allclose(vectors[0], vectors[1])
    assert len(encoder.files.sha256) == 64  # unpinned: computed, logged and recorded


def test_mean_pooling_ignores_padding(tiny_bert):
    import torch

    encoder = encoder_from(tiny_params(tiny_bert, normalize=False, max_length=64))
    short, long = "gene kinase", " ".join(["the cell cycle ."] * 10)
    together = encoder.encode([short, long])
    alone = encoder.encode([short])
    assert np.allclose(together[0], alone[0], atol=1e-5)  # padded beside a long text or not
    tokens = encoder.tokenizer(short, return_tensors="pt")
    with torch.inference_mode():
        expected = encoder.model(**tokens).last_hidden_state[0].mean(0).numpy()
    assert np.allclose(alone[0], expected, atol=1e-5)


def test_max_length_beyond_the_model_is_refused(tiny_bert):
    with pytest.raises(EncoderError, match="exceeds the model's 64 positions"):
        encoder_from(tiny_params(tiny_bert, max_length=512))


def facet_table(texts_by_gene: dict[str, list[str | None]]) -> pd.DataFrame:
    facets = ["transcription", "cell_cycle", "transport"]
    rows = [
        {
            "entrez_id": entrez,
            "symbol": f"G{entrez}",
            "facet": facets[k],
            "facet_index": k,
            "is_none": text is None,
            "text": text or "NONE",
        }
        for entrez, texts in texts_by_gene.items()
        for k, text in enumerate(texts)
    ]
    return pd.DataFrame(rows)


def stage_params(tiny_bert, cache_dir, code_sha256="code") -> dict:
    """The stage's params as the CLI gives them: the section, a cache and the code's digest."""
    params = tiny_params(tiny_bert, max_length=16)
    return {**params, "cache_dir": str(cache_dir), "code_sha256": code_sha256}


def test_stage_writes_float16_tensor_mask_and_provenance_details(tiny_bert, tmp_path):
    from dygenept.formats.facet_tensor import load_facet_tensor

    table = facet_table(
        {
            "1": ["gene kinase", None, "transport"],
            "2": [None, None, None],
            "3": ["gene kinase", "the cell cycle .", None],  # shares a text with gene 1
        }
    )
    table.to_parquet(tmp_path / "facets.parquet")
    details = facet_embed.run(
        {"facets": tmp_path / "facets.parquet"},
        {"tensor": tmp_path / "tensor.safetensors"},
        stage_params(tiny_bert, tmp_path / "cache"),
    )
    tensor = load_facet_tensor(tmp_path / "tensor.safetensors")
    assert tensor.entrez_ids == ["1", "2", "3"]
    assert tensor.facet_ids == ["transcription", "cell_cycle", "transport"]
    assert tensor.mask.tolist() == [[True, False, True], [False, False, False], [True, True, False]]
    assert not tensor.embeddings[~tensor.mask].any()
    assert np.array_equal(tensor.embeddings[0, 0], tensor.embeddings[2, 0])
    assert np.allclose(np.linalg.norm(tensor.embeddings[tensor.mask], axis=-1), 1.0, atol=1e-2)
    assert details["distinct_texts"] == 3 and details["truncated_texts"] == 0
    assert details["shape"] == [3, 3, 32] and details["device"] == "cpu"
    assert details["weights_sha256"] and details["pooling"] == "mean"


@pytest.mark.gpu
def test_cuda_half_precision_matches_the_cpu(minilm):
    texts = facet_like_texts(200, seed=4)
    for precision in ("fp16", "bf16"):
        gpu = encoder_from(
            {**facet_embed_params(**MINILM), "device": "cuda", "precision": precision}
        )
        vectors = gpu.encode(texts)
        assert gpu.device == "cuda" and vectors.dtype == np.float32
        cosine = (vectors * minilm.encode(texts)).sum(axis=1)
        assert cosine.min() > 0.995, (precision, cosine.min())


def test_a_grown_gene_list_encodes_only_the_new_texts(tiny_bert, tmp_path):
    from dygenept.formats.facet_tensor import load_facet_tensor

    texts = {
        "1": ["gene kinase", None, "transport"],
        "3": ["gene kinase", "the cell cycle .", None],
    }
    grown = {**texts, "4": ["gene kinase", "a new text", "another new text"]}

    def run(genes, name, cache="cache", code="code"):
        facet_table(genes).to_parquet(tmp_path / f"{name}.parquet")
        details = facet_embed.run(
            {"facets": tmp_path / f"{name}.parquet"},
            {"tensor": tmp_path / f"{name}.safetensors"},
            stage_params(tiny_bert, tmp_path / cache, code),
        )
        return details, load_facet_tensor(tmp_path / f"{name}.safetensors")

    first, _ = run(texts, "first")
    assert first["texts_encoded"] == first["distinct_texts"] == 3
    second, tensor = run(grown, "second")
    assert (second["distinct_texts"], second["texts_encoded"]) == (5, 2)
    cold, cold_tensor = run(grown, "cold", cache="empty")
    assert cold["texts_encoded"] == 5
    assert np.array_equal(tensor.embeddings, cold_tensor.embeddings)
    assert np.array_equal(tensor.mask, cold_tensor.mask)
    # other code (or encoder, settings, device) never reads the old vectors
    changed, _ = run(grown, "changed", code="edited")
    assert changed["texts_encoded"] == 5
