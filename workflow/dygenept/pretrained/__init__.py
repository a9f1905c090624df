"""Pretrained models the compute stages load (the facet text encoder, the LLM, the scGPT checkpoint).

``fetch`` downloads each configured model once (rule ``fetch_models``, where Snakemake runs) into a local
directory at a pinned revision and writes its manifest; ``lock`` keeps the commit a null revision resolved
to; ``local`` opens a fetched model from its manifest and ``offline`` sets the hubs' offline switches
while it loads; ``weights`` finds a model directory's weight files and hashes them. ``roles`` (standard
library only) says which models a config fetches, for ``rules/common.smk`` and the stages alike.
"""
