"""facet_embed: texts/s and tokens/s of the text encoder, on facet texts with the demo's length distribution.

Two encoders: the real all-MiniLM-L6-v2 (the demo's, D=384) and a BERT-base built from BertConfig (12
layers, D=768: PubMedBERT's shape, random weights, which cost the same time). `--device cuda` runs the
same on a GPU (fp16/bf16 autocast); the design's goal there is the whole (20000, 8, 768) tensor (160,000
texts) in under 60 s on one H100.
"""

import argparse
import random
import tempfile
from pathlib import Path

import pandas as pd

from dygenept.config_defaults import merged, section_defaults
from dygenept.text_encoders import TextEncoder, TextEncoderSettings, resolve_model_files

from _common import DEMO_OUT, machine, require, timed

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--quick", action="store_true", help="a small run, to check the script works")
parser.add_argument("--texts", type=int, default=400, help="distinct texts to encode")
parser.add_argument("--device", default="cpu", help="auto, cpu, cuda")
parser.add_argument("--tokens-per-batch", type=int, default=16384)
args = parser.parse_args()
n_texts = 48 if args.quick else args.texts

FACETS = DEMO_OUT / "model" / "facets" / "facets.parquet"
require(FACETS)
demo = pd.read_parquet(FACETS)
demo_texts = demo.loc[~demo["is_none"], "text"].tolist()
rng = random.Random(0)
# Distinct texts (the encoder deduplicates), each a demo facet text: the demo's length distribution.
texts = [f"Gene {i}. {rng.choice(demo_texts)}" for i in range(n_texts)]


def encoder_settings(max_length: int, **model) -> TextEncoderSettings:
    """The schema's facet_embed settings (its encoder: the packaged all-MiniLM-L6-v2, pinned), mean-pooled
    and normalised, with this run's device and token budget; ``model`` overrides the weights' source."""
    overrides = {
        "encoder": {"pooling": "mean", "normalize": True, "max_length": max_length, **model},
        "device": args.device,
        "precision": "auto",
        "tokens_per_batch": args.tokens_per_batch,
    }
    return TextEncoderSettings.from_params(merged(section_defaults("facet_embed"), overrides))


def bert_base_dir(directory: Path) -> Path:
    """BERT-base (PubMedBERT's shape) with random weights, beside MiniLM's uncased WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    minilm = resolve_model_files(encoder_settings(256).encoder).directory
    AutoTokenizer.from_pretrained(minilm).save_pretrained(directory)
    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(directory)  # 12 layers, 768 wide, 30522 tokens
    return directory


def bench(name: str, settings: TextEncoderSettings) -> None:
    encoder, load_seconds = timed(TextEncoder.from_settings, settings)
    max_length = settings.encoder.max_length
    encoder.encode(texts[:16])  # warm-up
    _, seconds = timed(encoder.encode, texts)
    report = encoder.report
    print(
        f"facet_embed ({name}, D={encoder.dim}, {encoder.device} {encoder.precision}, max {max_length} "
        f"tokens): {report.texts / seconds:,.1f} texts/s, {report.tokens / seconds:,.0f} tokens/s  "
        f"[{report.texts} texts, {report.tokens:,} tokens ({report.tokens / report.texts:.0f}/text), "
        f"{report.truncated} cut, {report.batches} batches, padding {report.padded_tokens / report.tokens - 1:.1%}]"
        f"  load: {load_seconds:.1f} s; 160,000 texts at this rate: {160_000 * seconds / report.texts / 60:.1f} min"
    )


bench("all-MiniLM-L6-v2", encoder_settings(256))
with tempfile.TemporaryDirectory() as tmp:
    base = bert_base_dir(Path(tmp))
    bench("BERT-base from BertConfig", encoder_settings(512, path=str(base), sha256=None))
print(f"  machine: {machine()}")
