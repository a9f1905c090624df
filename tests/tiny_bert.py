"""A BERT encoder built from a config (random weights, a word-level vocabulary), saved as the Hub's BERT
repositories hold it (config, vocab, tokenizer files, model.safetensors): the tests' real small encoder."""

from __future__ import annotations

from pathlib import Path


def save_tiny_bert(path: Path, vocab: list[str], hidden_size: int) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return path
