"""Which configured models rule ``fetch_models`` downloads, and with which settings.

Standard library only: ``rules/common.smk`` reads it while the workflow is parsed, and the stages use the
same answers (where an encoder's files come from is decided here once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# A Hugging Face repository id: "name" or "owner/name".
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# LLM backends that load the model's weights themselves (openai asks a server that has them).
WEIGHT_LOADING_LLM_BACKENDS = ("vllm", "transformers")
# A scGPT checkpoint directory (the official layout): input name → file; the weights come first.
SCGPT_FILES = {
    "scgpt_weights": "best_model.pt",
    "scgpt_vocab": "vocab.json",
    "scgpt_args": "args.json",
}


@dataclass(frozen=True)
class ModelRole:
    name: str  # the manifest is <models.dir>/<name>.json
    key: str  # the config section of the model's settings
    local_key: str  # the key that names a local directory instead of a download


ROLES = {
    role.name: role
    for role in (
        ModelRole("facet_encoder", "facet_embed.encoder", "facet_embed.encoder.path"),
        ModelRole("llm", "facets.llm", "facets.llm.model"),
        ModelRole("scgpt", "cells.scgpt", "cells.scgpt.model_dir"),
    )
}


def encoder_source(path: str | None, package: str | None, hub_id: str | None) -> str:
    """Where config ``facet_embed.encoder`` takes its files from: path, else package, else hub."""
    if path:
        return "path"
    if package:
        return "package"
    return "hub" if hub_id else "none"


def llm_is_local(model: str) -> bool:
    """A local model directory rather than a Hub id (config 'facets.llm.model')."""
    return Path(model).is_dir() or not HUB_ID.match(model)


def fetch_settings(config: dict) -> dict[str, dict]:
    """{role name: the params of its fetch_models job} for every model the config downloads."""
    hub = config["models"]
    common = {
        "lock": hub["lock"],
        "endpoint": hub["hub_endpoint"],
        "attempts": hub["attempts"],
        "timeout_seconds": hub["timeout_seconds"],
    }

    def from_hub(role: str, repo_id: str, revision: str | None, sha256: str | None) -> dict:
        return {
            **common,
            "name": role,
            "key": ROLES[role].key,
            "local_key": ROLES[role].local_key,
            "source": "hub",
            "repo_id": repo_id,
            "revision": revision,
            "sha256": sha256,
            "directory": hub["dir"],
            "url": None,
            "files": [],
            "weights": None,
        }

    found = {}
    encoder = config["facet_embed"]["encoder"]
    if encoder_source(encoder["path"], encoder["package"], encoder["hub_id"]) == "hub":
        found["facet_encoder"] = from_hub(
            "facet_encoder", encoder["hub_id"], encoder["revision"], encoder["sha256"]
        )
    llm = config["facets"]["llm"]
    if config["facets"]["backend"] in WEIGHT_LOADING_LLM_BACKENDS and not llm_is_local(
        llm["model"]
    ):
        found["llm"] = from_hub("llm", llm["model"], llm["revision"], llm["sha256"])
    scgpt = config["cells"]["scgpt"]
    if config["cells"]["encoder"] == "scgpt" and scgpt["url"]:
        found["scgpt"] = {
            **from_hub("scgpt", None, None, scgpt["sha256"]),
            "source": "url",
            "url": scgpt["url"],
            "directory": scgpt["model_dir"],
            "files": list(SCGPT_FILES.values()),
            "weights": SCGPT_FILES["scgpt_weights"],
        }
    return found
