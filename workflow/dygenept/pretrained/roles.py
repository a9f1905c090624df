"""Which configured models rule ``fetch_models`` downloads (``registry.PRETRAINED_MODELS`` names them),
and with which settings.

Standard library only: ``rules/common.smk`` reads it while the workflow is parsed, and the stages use the
same answers (where an encoder's files come from is decided here once).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..registry import CELL_ENCODERS, LLM_ENGINES, PRETRAINED_MODELS

# A Hugging Face repository id: "name" or "owner/name".
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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
            "key": PRETRAINED_MODELS[role].key,
            "local_key": PRETRAINED_MODELS[role].local_key,
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
    engine = LLM_ENGINES.get(config["facets"]["backend"])
    if engine is not None and engine.loads_weights and not llm_is_local(llm["model"]):
        found["llm"] = from_hub("llm", llm["model"], llm["revision"], llm["sha256"])
    scgpt = config["cells"]["scgpt"]
    if config["cells"]["encoder"] == "scgpt" and scgpt["url"]:
        checkpoint = CELL_ENCODERS["scgpt"].checkpoint
        found["scgpt"] = {
            **from_hub("scgpt", None, None, scgpt["sha256"]),
            "source": "url",
            "url": scgpt["url"],
            "directory": scgpt["model_dir"],
            "files": list(checkpoint.values()),
            "weights": checkpoint["scgpt_weights"],
        }
    return found
