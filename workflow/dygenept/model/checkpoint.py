"""Checkpoints: the network's config and its prior's kind as JSON beside the network's weights and the
prior's arrays as safetensors (never pickle).

``save_checkpoint``/``load_checkpoint``: a trained model (network + prior). ``save_fold_checkpoints``/
``load_fold_checkpoints``: one per cross-validation fold in one pair of files (tensor names prefixed by the
fold's name). ``save_training_state``/``load_training_state``: the state a killed run resumes from
(weights, AdamW moments, the best weights so far as safetensors; step, history and early-stopping counters
as JSON), keyed by the run it belongs to.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io.artifacts import atomic_path, read_json, write_json_atomic
from .network import DyGenePTModule, ModelConfig, TrainedModel
from .prior import Prior

PRIOR_PREFIX = "prior."


def model_tensors(model: TrainedModel, prefix: str = "") -> dict[str, torch.Tensor]:
    tensors = {f"{prefix}{k}": v.contiguous() for k, v in model.module.state_dict().items()}
    for name, array in model.prior.saved_arrays().items():
        tensors[f"{prefix}{PRIOR_PREFIX}{name}"] = torch.tensor(array)
    return tensors


def model_record(model: TrainedModel, extra: dict) -> dict:
    return {"model": model.module.config.to_dict(), "prior": model.prior.meta(), **extra}


def model_from(record: dict, tensors: dict[str, torch.Tensor]) -> TrainedModel:
    prior_arrays = {
        k[len(PRIOR_PREFIX) :]: v.numpy() for k, v in tensors.items() if k.startswith(PRIOR_PREFIX)
    }
    module = DyGenePTModule(ModelConfig(**record["model"]))
    module.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(PRIOR_PREFIX)})
    module.eval()
    return TrainedModel(module, Prior.from_saved(record["prior"], prior_arrays))


def save_checkpoint(
    model: TrainedModel, weights_path: Path, config_path: Path, extra: dict
) -> None:
    with atomic_path(weights_path) as tmp:
        save_file(model_tensors(model), str(tmp))
    write_json_atomic(config_path, model_record(model, extra))


def load_checkpoint(weights_path: str | Path, config_path: str | Path) -> tuple[TrainedModel, dict]:
    saved = read_json(config_path)
    return model_from(saved, load_file(str(weights_path))), saved


def save_fold_checkpoints(
    models: dict[str, tuple[TrainedModel, dict]], weights_path: Path, config_path: Path
) -> None:
    """Every fold's model (name → (model, extra record)) in one safetensors and one JSON file."""
    tensors: dict[str, torch.Tensor] = {}
    for name, (model, _) in models.items():
        tensors |= model_tensors(model, f"{name}/")
    with atomic_path(weights_path) as tmp:
        save_file(tensors, str(tmp))
    folds = {name: model_record(model, extra) for name, (model, extra) in models.items()}
    write_json_atomic(config_path, {"folds": folds})


def load_fold_checkpoints(
    weights_path: str | Path, config_path: str | Path
) -> dict[str, tuple[TrainedModel, dict]]:
    saved = read_json(config_path)["folds"]
    tensors = load_file(str(weights_path))
    loaded = {}
    for name, record in saved.items():
        prefix = f"{name}/"
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        loaded[name] = (model_from(record, own), record)
    return loaded


def _paths(prefix: Path) -> tuple[Path, Path]:
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + ".safetensors"), prefix.with_name(prefix.name + ".json")


def save_training_state(
    prefix: Path, key: str, model: torch.nn.Module, optimiser: torch.optim.Optimizer, state: dict
) -> None:
    """Tensors to ``<prefix>.safetensors``, the rest to ``<prefix>.json`` (written last: it marks a
    complete state)."""
    tensors_path, json_path = _paths(prefix)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optimiser_state = optimiser.state_dict()
    for index, values in optimiser_state["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    for k, v in (state["best_weights"] or {}).items():
        tensors[f"best.{k}"] = v
    with atomic_path(tensors_path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    scalars = {k: v for k, v in state.items() if k != "best_weights"}
    write_json_atomic(
        json_path,
        {
            "key": key,
            "state": scalars,
            "has_best": state["best_weights"] is not None,
            "param_groups": optimiser_state["param_groups"],
        },
    )


def load_training_state(
    prefix: Path,
    key: str,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    device: torch.device,
) -> dict | None:
    """Load a saved state into ``model`` and ``optimiser``; None when there is none for this run."""
    tensors_path, json_path = _paths(prefix)
    if not (tensors_path.exists() and json_path.exists()):
        return None
    saved = read_json(json_path)
    if saved["key"] != key:
        return None
    tensors = load_file(str(tensors_path), device=str(device))

    def part(name: str) -> dict[str, torch.Tensor]:
        return {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}

    model.load_state_dict(part("model"))
    state: dict = {}
    for name, value in part("optim").items():
        index, field = name.split(".", 1)
        state.setdefault(int(index), {})[field] = value.cpu() if field == "step" else value
    optimiser.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return {**saved["state"], "best_weights": part("best") if saved["has_best"] else None}


def remove_training_state(prefix: Path) -> None:
    for path in _paths(prefix):
        path.unlink(missing_ok=True)


def checkpoint_inputs(inputs: dict[str, Path]) -> dict[str, dict[int, tuple[Path, Path]]]:
    """``weights__<variant>__<seed>`` and ``config__<variant>__<seed>`` inputs → variant → seed → paths."""
    found: dict[str, dict[int, tuple[Path, Path]]] = {}
    for name, path in inputs.items():
        if name.startswith("weights__"):
            _, variant, seed = name.split("__")
            found.setdefault(variant, {})[int(seed)] = (path, inputs[f"config__{variant}__{seed}"])
    return found
