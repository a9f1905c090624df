"""Fitting the DyGenePT adapters on training perturbations; the backbones stay frozen.

Each step draws a few training perturbations and, for each, a batch of control cells; the loss is the
squared error between the mean predicted and the mean observed expression of that perturbation
(observed cells are not paired with control cells in Perturb-seq, so the mean is the target), plus an
optional entropy penalty on the facet weights. AdamW, linear warm-up then cosine decay, gradient clipping,
bf16 autocast on CUDA. The validation loss is measured before the first step (the untrained network is
the train_mean baseline) and every ``eval_every`` steps; the weights of the best one are kept, and
training stops after ``patience`` evaluations without improvement.

Every step draws its perturbations and cells from a generator seeded by (seed, step), and seeds torch's
(dropout) generator the same way, so a run resumed from a checkpoint (``checkpoint_every``) takes exactly
the steps an uninterrupted run takes: on CPU the weights are identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.perturbations import PerturbationData
from ..devices import resolve_device
from .checkpoint import load_training_state, save_training_state
from .network import DyGenePTModule, ModelConfig

log = logging.getLogger(__name__)

VALIDATION_CELLS = 256


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """torch's deterministic-algorithms switch set to ``enabled`` inside the block and put back after:
    it is process-wide, and a later CUDA matrix product in the same process (evaluation after a fit)
    would otherwise fail for want of a deterministic kernel."""
    before, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def mean_shift(data: PerturbationData, train_conditions: list[str]) -> np.ndarray:
    """The train_mean baseline's change: the mean over training perturbations of their mean change
    (each from its own context's controls, in data split by context)."""
    if data.control_context is None:
        return np.mean([data.true_mean(c) for c in train_conditions], axis=0) - data.control_mean
    return np.mean([data.change(c) for c in train_conditions], axis=0)


def build_model(
    data: PerturbationData, model_params: dict, train_conditions: list[str]
) -> DyGenePTModule:
    _, n_facets, facet_dim = data.facets.embeddings.shape
    config = ModelConfig(
        cell_dim=data.cell_state.shape[1],
        facet_dim=facet_dim,
        n_facets=n_facets,
        n_genes=len(data.gene_names),
        hidden_dim=model_params["hidden_dim"],
        mlp_dim=model_params["mlp_dim"],
        dropout=model_params["dropout"],
        attention=model_params["attention"],
        contrastive_dim=model_params["contrastive_dim"]
        if model_params["contrastive_weight"]
        else 0,
    )
    weight = data.cells.decoder_weight
    return DyGenePTModule(
        config,
        None if weight is None else torch.from_numpy(weight),
        torch.from_numpy(mean_shift(data, train_conditions).astype(np.float32)),
    )


@dataclass
class DeviceData:
    """Control cells, targets and facet inputs of a set of conditions, as tensors on one device."""

    conditions: list[str]
    cell_state: torch.Tensor
    control: torch.Tensor
    targets: torch.Tensor  # (conditions, G)
    facets: torch.Tensor  # (conditions, 2, K, D)
    mask: torch.Tensor
    present: torch.Tensor
    sizes: torch.Tensor  # (conditions,): squared size of each observed change from the control mean
    changes: torch.Tensor  # (conditions, G): each observed change from its control mean
    # each condition's control-cell rows (its context's), or None: every control cell
    control_pools: list[np.ndarray] | None = None

    @classmethod
    def build(cls, data: PerturbationData, conditions: list[str], device: torch.device):
        facets, mask, present = data.facet_inputs(conditions)
        targets = np.stack([data.true_mean(c) for c in conditions]).astype(np.float32)
        controls = np.stack([data.control_mean_of(c) for c in conditions])
        sizes = np.mean((targets - controls) ** 2, axis=1).clip(min=1e-12)
        pools = None if data.control_context is None else [data.control_rows(c) for c in conditions]
        return cls(
            list(conditions),
            torch.from_numpy(data.cell_state).float().to(device),
            torch.from_numpy(data.control_expression).float().to(device),
            torch.from_numpy(targets).to(device),
            facets.to(device),
            mask.to(device),
            present.to(device),
            torch.from_numpy(sizes.astype(np.float32)).to(device),
            torch.from_numpy((targets - controls).astype(np.float32)).to(device),
            pools,
        )


def entropy(weights: torch.Tensor) -> torch.Tensor:
    return -(weights * torch.log(weights.clamp_min(1e-12))).sum(-1)


def batch_loss(
    model: DyGenePTModule,
    batch: DeviceData,
    condition_index: np.ndarray,
    cell_index: np.ndarray,
    entropy_penalty: float = 0.0,
    relative: bool = False,
    contrastive: tuple[float, float] = (0.0, 0.1),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, its squared-error part) for conditions × cells drawn by index (n, c).

    ``relative``: each condition's squared error divided by the squared size of its observed change, so
    that every perturbation counts equally rather than the ones with the largest effect.
    ``contrastive``: (weight, temperature) of the CLIP-style alignment loss (weight 0: off)."""
    contrastive_weight, temperature = contrastive
    n, per_condition = cell_index.shape
    device = batch.cell_state.device
    cells = torch.from_numpy(cell_index.ravel()).to(device)
    rows = torch.from_numpy(np.repeat(condition_index, per_condition)).to(device)
    predicted, weights, *embedding = model(
        batch.cell_state[cells],
        batch.control[cells],
        batch.facets[rows],
        batch.mask[rows],
        batch.present[rows],
        with_embedding=contrastive_weight > 0,
    )
    predicted_mean = predicted.float().view(n, per_condition, -1).mean(dim=1)
    index = torch.from_numpy(condition_index).to(device)
    per_condition_error = torch.mean((predicted_mean - batch.targets[index]) ** 2, dim=1)
    if relative:
        per_condition_error = per_condition_error / batch.sizes[index]
    squared_error = per_condition_error.mean()
    loss = squared_error
    if entropy_penalty > 0:
        slots = batch.present[rows]
        loss = loss + entropy_penalty * entropy(weights.float())[slots].mean()
    if contrastive_weight > 0 and n > 1:
        gene_embedding = embedding[0].float().view(n, per_condition, -1).mean(dim=1)
        alignment = model.contrastive_loss(gene_embedding, batch.changes[index], temperature)
        loss = loss + contrastive_weight * alignment
    return loss, squared_error


def training_step_loss(
    model: DyGenePTModule,
    data: PerturbationData,
    conditions: list[str],
    cells_per_condition: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    """The squared error of mean expression for ``conditions``, on CPU (tests, small checks)."""
    batch = DeviceData.build(data, conditions, torch.device("cpu"))
    picks = data.draw_controls(conditions, cells_per_condition, rng)
    return batch_loss(model, batch, np.arange(len(conditions)), picks)[1]


def validation_loss(model: DyGenePTModule, batch: DeviceData, seed: int) -> float:
    """Mean over validation perturbations of the squared error of mean expression relative to the
    squared size of the observed change (every perturbation counts equally, not the one with the
    largest effect), over a fixed draw of control cells."""
    pools = batch.control_pools or [np.arange(batch.cell_state.shape[0])] * len(batch.conditions)
    model.eval()
    with torch.no_grad():
        losses = []
        for i, pool in enumerate(pools):
            picks = pool[
                np.random.default_rng(seed).choice(
                    len(pool), size=min(len(pool), VALIDATION_CELLS), replace=False
                )
            ]
            losses.append(
                batch_loss(model, batch, np.array([i]), picks[None, :], relative=True)[1].item()
            )
    model.train()
    return float(np.mean(losses))


def learning_rate(step: int, params: dict) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to zero at ``steps``."""
    peak, warmup, total = params["learning_rate"], params["warmup_steps"], params["steps"]
    if step <= warmup:
        return peak * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def run_key(model: DyGenePTModule, train: list[str], val: list[str], params: dict) -> str:
    """What a resumable checkpoint must match: the network, the data's conditions and the settings."""
    settings = {k: v for k, v in params.items() if k not in ("log_every", "checkpoint_every")}
    record = {"model": model.config.to_dict(), "train": train, "val": val, "params": settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@dataclass
class TrainingState:
    step: int = 0
    history: list | None = None
    best_val: float = float("inf")
    best_step: int = 0
    evals_since_best: int = 0
    best_weights: dict | None = None
    stopped_early: bool = False


def fit(
    model: DyGenePTModule,
    data: PerturbationData,
    train_conditions: list[str],
    params: dict,
    val_conditions: list[str] = (),
    resume_path: Path | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> dict:
    """Train; return {"history", "best_step", "best_val_loss", "stopped_early", "device", "steps_run"}.

    With ``resume_path`` (a path prefix) the state is saved every ``checkpoint_every`` steps, and a run
    whose saved state matches this one's network, conditions and settings continues from it. On the CPU
    the fit runs with torch's deterministic algorithms (restored after); the model comes back on the CPU.
    """
    device = torch.device(resolve_device(params["device"], "train.device"))
    with deterministic_algorithms(device.type == "cpu"):
        return fit_on(
            model,
            data,
            train_conditions,
            params,
            val_conditions,
            resume_path,
            on_checkpoint,
            device,
        )


def fit_on(
    model: DyGenePTModule,
    data: PerturbationData,
    train_conditions: list[str],
    params: dict,
    val_conditions: list[str],
    resume_path: Path | None,
    on_checkpoint: Callable[[int], None] | None,
    device: torch.device,
) -> dict:
    """``fit`` on a resolved device."""
    amp = params["amp"] and device.type == "cuda"
    model.to(device)
    train_batch = DeviceData.build(data, list(train_conditions), device)
    val_batch = DeviceData.build(data, list(val_conditions), device) if val_conditions else None
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=params["learning_rate"], weight_decay=params["weight_decay"]
    )
    key = run_key(model, list(train_conditions), list(val_conditions), params)
    state = TrainingState(history=[])
    if resume_path is not None:
        resumed = load_training_state(resume_path, key, model, optimiser, device)
        if resumed is not None:
            state = TrainingState(**resumed)
            log.info("resumed from step %d (%s)", state.step, resume_path)
    if val_batch is not None and state.step == 0:
        state.best_val = validation_loss(model, val_batch, params["seed"])
        state.best_weights = snapshot(model)
        state.history.append({"step": 0, "val_loss": state.best_val})
        log.info("step 0 (the train_mean baseline): val_loss %.5f", state.best_val)
    per_step = min(params["conditions_per_step"], len(train_conditions))
    started, first_step = time.perf_counter(), state.step + 1
    model.train()
    for step in range(first_step, params["steps"] + 1):
        if state.stopped_early:
            break
        rng = np.random.default_rng([params["seed"], step])
        torch.manual_seed(params["seed"] * 1_000_003 + step)
        conditions = rng.choice(len(train_conditions), size=per_step, replace=False)
        cells = data.draw_controls(
            [train_conditions[i] for i in conditions], params["cells_per_condition"], rng
        )
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, params)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, squared_error = batch_loss(
                model,
                train_batch,
                conditions,
                cells,
                params["entropy_penalty"],
                params["loss"] == "relative",
                (params["model"]["contrastive_weight"], params["model"]["contrastive_temperature"]),
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), params["grad_clip"])
        optimiser.step()
        state.step = step
        record = {"step": step, "loss": squared_error.item()}
        if val_batch is not None and (step % params["eval_every"] == 0 or step == params["steps"]):
            record["val_loss"] = validation_loss(model, val_batch, params["seed"])
            if record["val_loss"] < state.best_val:
                state.best_val, state.best_step, state.evals_since_best = (
                    record["val_loss"],
                    step,
                    0,
                )
                state.best_weights = snapshot(model)
            else:
                state.evals_since_best += 1
                if params["patience"] and state.evals_since_best >= params["patience"]:
                    state.stopped_early = True
        state.history.append(record)
        if step % params["log_every"] == 0 or step == params["steps"] or state.stopped_early:
            rate = (step - first_step + 1) / (time.perf_counter() - started)
            log.info(
                "step %d/%d loss %.5f%s lr %.2e %.1f steps/s",
                step,
                params["steps"],
                record["loss"],
                f" val_loss {record['val_loss']:.5f}" if "val_loss" in record else "",
                learning_rate(step, params),
                rate,
            )
        if resume_path is not None and step % params["checkpoint_every"] == 0:
            save_training_state(resume_path, key, model, optimiser, vars(state))
            if on_checkpoint is not None:
                on_checkpoint(step)
    if state.stopped_early:
        log.info(
            "stopped early at step %d: no better validation loss since step %d",
            state.step,
            state.best_step,
        )
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
        log.info(
            "kept the weights of step %d (validation loss %.5f)", state.best_step, state.best_val
        )
    model.eval().to("cpu")
    return {
        "history": state.history,
        "best_step": state.best_step,
        "best_val_loss": None if val_batch is None else state.best_val,
        "stopped_early": state.stopped_early,
        "steps_run": state.step,
        "device": str(device),
        "amp": amp,
    }


def snapshot(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
