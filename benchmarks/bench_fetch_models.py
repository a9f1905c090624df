"""fetch_models: MB/s of a model download through the Hub's file API, verified, from the loopback Hub of
tests/loopback.py; and the time a later run takes to find the same model (verified before: no network).

The repository holds a config, a tokenizer file and weights of the size asked for (random bytes), the
weights in Git LFS (sha256-checked) and the rest by git blob id, as on the real Hub. The figure is the
project's own cost (HTTP layer, hashing, atomic writes), not the internet's.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))
from dygenept.config_defaults import section_defaults  # noqa: E402
from dygenept.pretrained.roles import fetch_settings  # noqa: E402
from dygenept.stages import fetch_models  # noqa: E402

from loopback import HubServer  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--quick", action="store_true", help="a small run, to check the script works")
parser.add_argument("--megabytes", type=int, default=400, help="size of the weights")
args = parser.parse_args()
megabytes = 20 if args.quick else args.megabytes

repo = "bench/model"
weights = np.random.default_rng(0).bytes(megabytes * 2**20)
files = {
    "config.json": b'{"model_type": "bert"}',
    "vocab.txt": b"[PAD]\n[UNK]\n" * 1000,
    "model.safetensors": weights,
}
with tempfile.TemporaryDirectory() as tmp, HubServer() as hub:
    commit = hub.push(repo, files)
    config = {name: section_defaults(name) for name in ("models", "facet_embed", "facets", "cells")}
    config["models"] |= {
        "dir": str(Path(tmp) / "models"),
        "lock": str(Path(tmp) / "lock.json"),
        "hub_endpoint": hub.url(),
    }
    config["facet_embed"]["encoder"] |= {
        "package": None,
        "hub_id": repo,
        "revision": commit,
        "sha256": None,
    }
    params = fetch_settings(config)["facet_encoder"]
    started = time.perf_counter()
    fetch_models.run({}, {"manifest": Path(tmp) / "first.json"}, params)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    fetch_models.run({}, {"manifest": Path(tmp) / "again.json"}, params)
    warm = time.perf_counter() - started
print(
    f"fetch_models: {megabytes / cold:,.1f} MB/s  [{megabytes} MB of weights + config and tokenizer "
    f"from the loopback Hub, sha256-verified; {cold:.1f} s]  a later run, verified before and not "
    f"asking the Hub: {warm:.1f} s ({megabytes / warm:,.0f} MB/s of hashing)"
)
print(f"  machine: {machine()}")
