"""The fetch_models stage: one configured model (the facet encoder, the LLM, or the scGPT checkpoint)
downloaded once into a local directory, verified, and described in a manifest the compute stages read.

A local rule: it runs where Snakemake runs (a workstation, or the cluster's login node), so compute jobs
never need the network. See ``pretrained.fetch`` for what is fetched and checked.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..pretrained.fetch import ModelFetchSettings, fetch_model

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Fetch one model and write its manifest.

    Reads nothing (the network, and the lock file config ``models.lock`` names). Writes ``manifest``
    (JSON: the model, the commit, the local directory, its files' sizes, the weights' sha256). Params:
    one entry of ``pretrained.roles.fetch_settings`` (the model, its config key, revision and pin, the
    ``models`` section's directory, lock file and Hub endpoint).
    """
    settings = ModelFetchSettings.from_params(params)
    fetched = fetch_model(settings)
    manifest = fetched.manifest
    manifest.write(outputs["manifest"])
    log.info(
        "%s: %s%s in %s (weights sha256 %s%s)",
        settings.key,
        manifest.model_id,
        f"@{manifest.revision}" if manifest.revision else "",
        manifest.directory,
        manifest.weights_sha256,
        "" if manifest.weights_sha256_pinned else ", not pinned",
    )
    return {
        "model_id": manifest.model_id,
        "revision": manifest.revision,
        "revision_from": fetched.revision_from,
        "directory": manifest.directory,
        "weights_sha256": manifest.weights_sha256,
        "weights_sha256_pinned": manifest.weights_sha256_pinned,
    }
