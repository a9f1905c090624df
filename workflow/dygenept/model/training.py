"""Fitting the DyGenePT adapters on training perturbations; the backbones stay frozen.

The network starts at a closed-form prior (``model.prior``: the training mean, ridge regression or kernel
retrieval from the genes' static embeddings, chosen by leave-one-out on the training perturbations) and
learns a residual. Each step draws a few training perturbations and, for each, a batch of control cells;
the loss is the squared error between the predicted mean change (over the drawn cells) and the
perturbation's observed mean change against its full control mean, so the sampled controls add no noise to
the target. A training perturbation's prior is its leave-one-out prediction (the prior fitted without it),
so the residual learns the prior's error on perturbations it has not seen, as at test time. Optionally an
entropy penalty on the facet weights. AdamW, linear warm-up then cosine decay, gradient clipping, bf16
autocast on CUDA. The validation score, 1 − the mean pearson_delta over the validation perturbations (the
reported metric), is measured before the first step (the untrained network is the prior) and every
``eval_every`` steps; the weights of the best one are kept, and training stops after ``patience``
evaluations without improvement.

Every step draws its perturbations and cells from a generator seeded by (seed, step), and seeds torch's
(dropout) generator the same way, so a run resumed from a checkpoint (``checkpoint_every``) takes exactly
the steps an uninterrupted run takes: on CPU the weights are identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..data.perturbations import PerturbationData
from ..devices import resolve_device
from ..settings import read_fields
from .checkpoint import load_training_state, save_training_state
from .network import AttentionKind, DyGenePTModule, ModelConfig, TrainedModel
from .prior import (
    Prior,
    PriorSettings,
    Selection,
    chosen_prior,
    row_pearson,
)

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


@dataclass(frozen=True)
class ModelSettings:
    """Config ``train.model`` with one variant's overrides."""

    hidden_dim: int
    mlp_dim: int
    dropout: float
    attention: AttentionKind
    slot_keys: bool
    query_in_shift: bool
    prior: Literal["selected", "mean", "ridge", "kernel"]
    contrastive_weight: float
    contrastive_dim: int
    contrastive_temperature: float

    @classmethod
    def from_params(cls, params: dict) -> ModelSettings:
        return read_fields(cls, params)


@dataclass(frozen=True)
class TrainSettings:
    """Config ``train`` for one variant and seed, with the prior's candidates (config ``baselines``)."""

    seed: int
    steps: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    conditions_per_step: int
    cells_per_condition: int
    loss: Literal["mse", "relative"]
    entropy_penalty: float
    eval_every: int
    patience: int
    checkpoint_every: int
    log_every: int
    device: str
    amp: bool
    model: ModelSettings
    prior: PriorSettings

    @classmethod
    def from_params(cls, params: dict) -> TrainSettings:
        """``params``: the train section with ``model`` (one variant's), ``seed`` and ``baselines``."""
        return read_fields(
            cls,
            params,
            model=ModelSettings.from_params(params["model"]),
            prior=PriorSettings.from_params(params["baselines"]),
        )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_model(data: PerturbationData, settings: ModelSettings) -> DyGenePTModule:
    _, n_facets, facet_dim = data.facets.embeddings.shape
    config = ModelConfig(
        cell_dim=data.cell_state.shape[1],
        facet_dim=facet_dim,
        n_facets=n_facets,
        n_genes=len(data.gene_names),
        hidden_dim=settings.hidden_dim,
        mlp_dim=settings.mlp_dim,
        dropout=settings.dropout,
        attention=settings.attention,
        contrastive_dim=settings.contrastive_dim if settings.contrastive_weight else 0,
        slot_keys=settings.slot_keys,
        query_in_shift=settings.query_in_shift,
    )
    weight = data.cells.decoder_weight
    return DyGenePTModule(config, None if weight is None else torch.from_numpy(weight))


def build_prior(
    data: PerturbationData, train_conditions: list[str], settings: TrainSettings
) -> tuple[Prior, Selection]:
    """The prior the network nests, fitted on the training perturbations: the candidate leave-one-out
    chooses among every kind (``selected``), or among the hyper-parameters of the kind the variant fixes."""
    candidates = settings.prior
    if settings.model.prior != "selected":
        candidates = dataclasses.replace(candidates, kinds=(settings.model.prior,))
    return chosen_prior(data.training_set(train_conditions), candidates)


@dataclass
class DeviceData:
    """Control cells, the nested prior's changes, targets and facet inputs of a set of conditions, as
    tensors on one device."""

    conditions: list[str]
    cell_state: torch.Tensor
    prior: torch.Tensor  # (conditions, G): the prior's change for each condition
    changes: torch.Tensor  # (conditions, G): each observed mean change from its full control mean
    facets: torch.Tensor  # (conditions, 2, K, D)
    mask: torch.Tensor
    present: torch.Tensor
    sizes: torch.Tensor  # (conditions,): mean squared size of each observed change
    # each condition's control-cell rows (its context's), or None: every control cell
    control_pools: list[np.ndarray] | None = None

    @classmethod
    def build(
        cls,
        data: PerturbationData,
        conditions: list[str],
        prior: np.ndarray,
        device: torch.device,
    ) -> DeviceData:
        facets, mask, present = data.facet_inputs(conditions)
        changes = np.stack([data.change(c) for c in conditions]).astype(np.float32)
        sizes = np.mean(changes.astype(np.float64) ** 2, axis=1).clip(min=1e-12)
        pools = None if data.control_context is None else [data.control_rows(c) for c in conditions]
        return cls(
            list(conditions),
            torch.from_numpy(data.cell_state).float().to(device),
            torch.from_numpy(np.asarray(prior, dtype=np.float32)).to(device),
            torch.from_numpy(changes).to(device),
            facets.to(device),
            mask.to(device),
            present.to(device),
            torch.from_numpy(sizes.astype(np.float32)).to(device),
            pools,
        )


def entropy(weights: torch.Tensor) -> torch.Tensor:
    return -(weights * torch.log(weights.clamp_min(1e-12))).sum(-1)


def predicted_changes(
    model: DyGenePTModule,
    batch: DeviceData,
    condition_index: np.ndarray,
    cell_index: np.ndarray,
    with_embedding: bool = False,
):
    """(mean predicted change over the drawn cells (n, G), per-cell facet weights, [embedding]) for
    conditions × cells drawn by index (n, c)."""
    n, per_condition = cell_index.shape
    device = batch.cell_state.device
    cells = torch.from_numpy(cell_index.ravel()).to(device)
    rows = torch.from_numpy(np.repeat(condition_index, per_condition)).to(device)
    change, weights, *embedding = model.change(
        batch.cell_state[cells],
        batch.facets[rows],
        batch.mask[rows],
        batch.present[rows],
        batch.prior[rows],
        with_embedding=with_embedding,
    )
    mean_change = change.float().view(n, per_condition, -1).mean(dim=1)
    return mean_change, weights, rows, embedding


def batch_loss(
    model: DyGenePTModule,
    batch: DeviceData,
    condition_index: np.ndarray,
    cell_index: np.ndarray,
    entropy_penalty: float = 0.0,
    relative: bool = False,
    contrastive: tuple[float, float] = (0.0, 0.1),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, its squared-error part) for conditions × cells drawn by index (n, c): the
    squared error of the mean predicted change against the observed mean change.

    ``relative``: each condition's squared error divided by the squared size of its observed change, so
    that every perturbation counts equally rather than the ones with the largest effect.
    ``contrastive``: (weight, temperature) of the CLIP-style alignment loss (weight 0: off)."""
    contrastive_weight, temperature = contrastive
    n, per_condition = cell_index.shape
    mean_change, weights, rows, embedding = predicted_changes(
        model, batch, condition_index, cell_index, with_embedding=contrastive_weight > 0
    )
    index = torch.from_numpy(condition_index).to(mean_change.device)
    per_condition_error = torch.mean((mean_change - batch.changes[index]) ** 2, dim=1)
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


def validation_loss(model: DyGenePTModule, batch: DeviceData, seed: int) -> float:
    """1 − the mean over validation perturbations of the Pearson correlation of predicted and observed
    change (the reported pearson_delta), each predicted over a fixed draw of its control cells."""
    pools = batch.control_pools or [np.arange(batch.cell_state.shape[0])] * len(batch.conditions)
    model.eval()
    predicted = []
    with torch.no_grad():
        for i, pool in enumerate(pools):
            picks = pool[
                np.random.default_rng(seed).choice(
                    len(pool), size=min(len(pool), VALIDATION_CELLS), replace=False
                )
            ]
            predicted.append(predicted_changes(model, batch, np.array([i]), picks[None, :])[0])
    model.train()
    predicted_matrix = torch.cat(predicted).cpu().double().numpy()
    observed = batch.changes.cpu().double().numpy()
    return float(1 - row_pearson(predicted_matrix, observed).mean())


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to zero at ``steps``."""
    peak, warmup, total = settings.learning_rate, settings.warmup_steps, settings.steps
    if step <= warmup:
        return peak * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def run_key(model: TrainedModel, train: list[str], val: list[str], settings: TrainSettings) -> str:
    """What a resumable checkpoint must match: the network, its prior, the data's conditions and the
    settings."""
    recorded = {
        k: v for k, v in settings.as_dict().items() if k not in ("log_every", "checkpoint_every")
    }
    record = {
        "model": model.module.config.to_dict(),
        "prior": model.prior.meta(),
        "train": train,
        "val": val,
        "settings": recorded,
    }
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
    model: TrainedModel,
    data: PerturbationData,
    train_conditions: list[str],
    settings: TrainSettings,
    val_conditions: list[str] = (),
    resume_path: Path | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> dict:
    """Train the network's residual over its prior; return {"history", "best_step", "best_val_loss",
    "stopped_early", "device", "steps_run"}.

    With ``resume_path`` (a path prefix) the state is saved every ``checkpoint_every`` steps, and a run
    whose saved state matches this one's network, prior, conditions and settings continues from it. On
    the CPU the fit runs with torch's deterministic algorithms (restored after); the network comes back on
    the CPU.
    """
    device = torch.device(resolve_device(settings.device, "train.device"))
    with deterministic_algorithms(device.type == "cpu"):
        return fit_on(
            model,
            data,
            train_conditions,
            settings,
            val_conditions,
            resume_path,
            on_checkpoint,
            device,
        )


def fit_on(
    model: TrainedModel,
    data: PerturbationData,
    train_conditions: list[str],
    settings: TrainSettings,
    val_conditions: list[str],
    resume_path: Path | None,
    on_checkpoint: Callable[[int], None] | None,
    device: torch.device,
) -> dict:
    """``fit`` on a resolved device."""
    amp = settings.amp and device.type == "cuda"
    network, prior = model.module, model.prior
    network.to(device)
    train_conditions, val_conditions = (
        data.measured(train_conditions),
        data.measured(val_conditions),
    )
    loo = prior.loo_changes(data.training_set(train_conditions))
    train_batch = DeviceData.build(data, train_conditions, loo, device)
    val_batch = None
    if val_conditions:
        val_prior = prior.changes([data.perturbation_genes(c) for c in val_conditions])
        val_batch = DeviceData.build(data, val_conditions, val_prior, device)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    key = run_key(model, train_conditions, val_conditions, settings)
    state = TrainingState(history=[])
    if resume_path is not None:
        resumed = load_training_state(resume_path, key, network, optimiser, device)
        if resumed is not None:
            state = TrainingState(**resumed)
            log.info("resumed from step %d (%s)", state.step, resume_path)
    if val_batch is not None and state.step == 0:
        state.best_val = validation_loss(network, val_batch, settings.seed)
        state.best_weights = snapshot(network)
        state.history.append({"step": 0, "val_loss": state.best_val})
        log.info("step 0 (the prior, %s): val_loss %.5f", prior.describe(), state.best_val)
    per_step = min(settings.conditions_per_step, len(train_conditions))
    started, first_step = time.perf_counter(), state.step + 1
    network.train()
    for step in range(first_step, settings.steps + 1):
        if state.stopped_early:
            break
        rng = np.random.default_rng([settings.seed, step])
        torch.manual_seed(settings.seed * 1_000_003 + step)
        conditions = rng.choice(len(train_conditions), size=per_step, replace=False)
        cells = data.draw_controls(
            [train_conditions[i] for i in conditions], settings.cells_per_condition, rng
        )
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, settings)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, squared_error = batch_loss(
                network,
                train_batch,
                conditions,
                cells,
                settings.entropy_penalty,
                settings.loss == "relative",
                (settings.model.contrastive_weight, settings.model.contrastive_temperature),
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), settings.grad_clip)
        optimiser.step()
        state.step = step
        record = {"step": step, "loss": squared_error.item()}
        if val_batch is not None and (step % settings.eval_every == 0 or step == settings.steps):
            record["val_loss"] = validation_loss(network, val_batch, settings.seed)
            if record["val_loss"] < state.best_val:
                state.best_val, state.best_step, state.evals_since_best = (
                    record["val_loss"],
                    step,
                    0,
                )
                state.best_weights = snapshot(network)
            else:
                state.evals_since_best += 1
                if settings.patience and state.evals_since_best >= settings.patience:
                    state.stopped_early = True
        state.history.append(record)
        if step % settings.log_every == 0 or step == settings.steps or state.stopped_early:
            rate = (step - first_step + 1) / (time.perf_counter() - started)
            log.info(
                "step %d/%d loss %.5f%s lr %.2e %.1f steps/s",
                step,
                settings.steps,
                record["loss"],
                f" val_loss {record['val_loss']:.5f}" if "val_loss" in record else "",
                learning_rate(step, settings),
                rate,
            )
        if resume_path is not None and step % settings.checkpoint_every == 0:
            save_training_state(resume_path, key, network, optimiser, vars(state))
            if on_checkpoint is not None:
                on_checkpoint(step)
    if state.stopped_early:
        log.info(
            "stopped early at step %d: no better validation loss since step %d",
            state.step,
            state.best_step,
        )
    if state.best_weights is not None:
        network.load_state_dict(state.best_weights)
        log.info(
            "kept the weights of step %d (validation loss %.5f)", state.best_step, state.best_val
        )
    network.eval().to("cpu")
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


def train_model(
    data: PerturbationData,
    train_conditions: list[str],
    val_conditions: list[str],
    settings: TrainSettings,
    resume_path: Path | None = None,
) -> tuple[TrainedModel, dict]:
    """Choose and fit the prior on the training perturbations, then fit the network's residual over it
    (early stopping on the validation perturbations). Returns the model and its training record."""
    prior, selection = build_prior(data, train_conditions, settings)
    log.info("prior: %s (leave-one-out scores %s)", prior.describe(), selection.scores)
    torch.manual_seed(settings.seed)
    model = TrainedModel(build_model(data, settings.model), prior)
    result = fit(model, data, train_conditions, settings, val_conditions, resume_path=resume_path)
    return model, {"prior_selection": selection.as_dict(), **result}
