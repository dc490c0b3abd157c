"""A space-group classifier built for the CPU: a compact 1D CNN in torch on the same normalised profiles.

The published CNN (classifiers.build_cnn) spends about 0.7 GFLOP per training sample, most of it
in a 256-filter, 32-wide convolution at full resolution. This one keeps what a PDF needs:
peak positions are absolute (r in Angstrom), so the features are flattened, not pooled away;
it halves the resolution after each pair of narrow convolutions, so the total is about 20 MFLOP per
training sample, and it trains at thousands of samples per second on two cores.

It also sees which part of the r range was measured: a second input channel is 1 where the
profile holds data and 0 beyond the measured r_max (a file that ends at 20 A, or an r-cut
augmentation), so zeros from a short file are not read as a flat G(r).

A model is shipped with the project (`shipped/`): its weights (state dict, float32) and a card
(classes, architecture, training settings, the digest of its training data settings, scores,
the command that reproduces it). `load_model_bundle` reads either that or a run's own artefact. The shipped
model is an ensemble of networks trained from several seeds (`train_members`, `ensemble_of`, ensemble.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from resources.conformal import tempered_softmax
from resources.progress import Progress

SHIPPED_DIR = Path(__file__).parent / "shipped"
WEIGHTS_NAME = "space_group_compact_cnn.pt"
CARD_NAME = "card.json"


@dataclass(frozen=True)
class CompactSettings:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 2e-3  # AdamW, cosine decay to zero over the epochs
    weight_decay: float = 1e-4
    dropout: float = 0.3
    channels: tuple[int, ...] = (16, 32, 48, 64)  # one resolution stage each (two convolutions, then pool)
    hidden: int = 128
    label_smoothing: float = 0.05
    max_train_seconds: float = 0.0  # 0: no wall-clock budget; else stop after the epoch that passes it
    patience: int = 8  # epochs without a better validation accuracy before stopping
    num_threads: int = 0  # torch threads; 0 keeps torch's default (one per core)


def measured_mask(profiles: np.ndarray) -> np.ndarray:
    """1 up to the last point that differs from the profile's tail value, 0 beyond (the unmeasured range).

    A full-range profile is 1 everywhere; a profile zeroed beyond r_max (then normalised) ends in a
    constant run, which is what 'not measured' looks like on the model grid.
    """
    x = np.asarray(profiles, dtype=np.float32)
    differs = np.abs(x - x[:, -1:]) > 1e-6
    last = np.where(differs.any(axis=1), x.shape[1] - 1 - np.argmax(differs[:, ::-1], axis=1), x.shape[1] - 1)
    mask = np.arange(x.shape[1])[None, :] <= np.minimum(last + 1, x.shape[1] - 1)[:, None]
    return mask.astype(np.float32)


def model_inputs(profiles: np.ndarray) -> np.ndarray:
    """(n, 2, n_points): the normalised profile and its measured-range mask."""
    x = np.asarray(profiles, dtype=np.float32)
    return np.stack([x, measured_mask(x)], axis=1)


def build_compact_cnn(n_points: int, n_classes: int, settings: CompactSettings, seed: int = 0):
    """[Conv-BN-ReLU x2, MaxPool(2)] per stage -> flatten -> dropout -> dense -> dropout -> logits.

    The initial weights are drawn from torch seeded with `seed` (the training seed), so two seeds start from
    different weights and one seed always from the same ones (training's dropout masks continue that stream)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers, channels_in, length = [], 2, n_points
    for channels in settings.channels:
        layers += [nn.Conv1d(channels_in, channels, 5, padding=2, bias=False), nn.BatchNorm1d(channels), nn.ReLU(),
                   nn.Conv1d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm1d(channels), nn.ReLU(),
                   nn.MaxPool1d(2)]
        channels_in, length = channels, length // 2
    layers += [nn.Flatten(), nn.Dropout(settings.dropout), nn.Linear(channels_in * length, settings.hidden),
               nn.ReLU(), nn.Dropout(settings.dropout), nn.Linear(settings.hidden, n_classes)]
    return nn.Sequential(*layers)


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def compact_logits(model, profiles: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits (n, n_classes) of normalised profiles (n, n_points), in float64 for the softmax."""
    import torch

    model.eval()
    inputs = model_inputs(profiles)
    out = []
    with torch.no_grad():
        for rows in _batches(len(inputs), batch_size, None):
            out.append(model(torch.from_numpy(inputs[rows])).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, n_classes_of(model)))


def n_classes_of(model) -> int:
    """Classes of a compact network or of an ensemble of them (their last layer's outputs)."""
    return (model.members[0] if hasattr(model, "members") else model)[-1].out_features


def ensemble_of(networks: list, n_points: int, settings: CompactSettings):
    """One network as it is; several as the mean of their logits (ensemble.LogitMean holding their weights)."""
    if len(networks) == 1:
        return networks[0]
    from assets.pdf.ensemble import LogitMean

    model = LogitMean(n_points, n_classes_of(networks[0]), settings, len(networks))
    for member, network in zip(model.members, networks):
        member.load_state_dict(network.state_dict())
    return model.eval()


def compact_probabilities(model, profiles: np.ndarray, temperature: float = 1.0, batch_size: int = 1024) -> np.ndarray:
    """Probabilities (n, n_classes) of normalised profiles: softmax(logits / temperature).

    temperature 1 is the raw softmax (what training uses); a model's fitted temperature (calibrate on its
    validation set, resources.conformal.fit_temperature) makes them calibrated.
    """
    return tempered_softmax(compact_logits(model, profiles, batch_size), temperature)


def train_compact_cnn(train_x: np.ndarray, train_index: np.ndarray, validation_x: np.ndarray,
                      validation_index: np.ndarray, n_classes: int, settings: CompactSettings, seed: int = 0,
                      log=print):
    """AdamW with a one-cycle rate, class-balanced cross-entropy, early stopping on validation accuracy.

    Returns (model with the best validation weights, history of per-epoch lists: loss, accuracy,
    val_accuracy, seconds, samples_per_second).
    """
    import torch
    from torch import nn

    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    rng = np.random.default_rng(seed)
    model = build_compact_cnn(train_x.shape[1], n_classes, settings, seed)
    counts = np.bincount(train_index, minlength=n_classes).astype(np.float64)
    class_weight = torch.tensor(np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0),
                                dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=settings.label_smoothing)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = settings.epochs * len(_batches(len(train_x), settings.batch_size, None))
    # one-cycle needs a warm-up of at least one step: tiny runs schedule 20 steps (their later steps unused)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=max(steps, 20),
                                                   pct_start=0.1)
    inputs, targets = torch.from_numpy(model_inputs(train_x)), torch.from_numpy(np.asarray(train_index, np.int64))
    history = {key: [] for key in ("loss", "accuracy", "val_accuracy", "seconds", "samples_per_second")}
    best_accuracy, best_state, best_epoch = -np.inf, None, 0
    progress = Progress("compact CNN training", settings.epochs, log, unit="epochs", every_s=0.0)
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        epoch_started, total_loss, correct = time.perf_counter(), 0.0, 0
        for rows in _batches(len(inputs), settings.batch_size, rng):
            if len(rows) < 2:  # BatchNorm needs two samples
                continue
            logits = model(inputs[rows])
            loss = loss_fn(logits, targets[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += loss.item() * len(rows)
            correct += int((logits.argmax(1) == targets[rows]).sum())
        seconds = time.perf_counter() - epoch_started
        val_accuracy = float((compact_probabilities(model, validation_x).argmax(1) == validation_index).mean()) \
            if len(validation_x) else float("nan")
        for key, value in (("loss", total_loss / len(inputs)), ("accuracy", correct / len(inputs)),
                           ("val_accuracy", val_accuracy), ("seconds", seconds),
                           ("samples_per_second", len(inputs) / seconds)):
            history[key].append(float(value))
        log(f"epoch {epoch}: loss={history['loss'][-1]:.4f} accuracy={history['accuracy'][-1]:.4f} "
            f"val_accuracy={val_accuracy:.4f} ({history['samples_per_second'][-1]:,.0f} samples/s)")
        progress.update(epoch + 1)
        if not val_accuracy <= best_accuracy:  # better, or NaN (no validation rows): keep the latest weights
            best_accuracy, best_epoch = val_accuracy, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if epoch - best_epoch >= settings.patience:
            log(f"early stop after epoch {epoch}: no better validation accuracy for {settings.patience} epochs")
            break
        if settings.max_train_seconds and time.perf_counter() - started >= settings.max_train_seconds:
            log(f"wall-clock budget of {settings.max_train_seconds:g} s spent after epoch {epoch}")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def train_members(train_x: np.ndarray, train_index: np.ndarray, validation: tuple, test: tuple, classes: list[int],
                  settings: CompactSettings, seeds: list[int], log=print) -> tuple[list, list[dict], list[dict]]:
    """One network per seed on the same profiles, each calibrated on the validation rows and scored on the test rows.

    Returns (networks, their training histories, a card record per member: seed, epochs run, seconds, its
    temperature and set threshold, its test scores)."""
    from assets.pdf import calibration

    networks, histories, members = [], [], []
    for k, seed in enumerate(seeds):
        log(f"member {k + 1} of {len(seeds)} (seed {seed})")
        started = time.perf_counter()
        network, history = train_compact_cnn(train_x, train_index, *validation, len(classes), settings, seed, log=log)
        seconds = time.perf_counter() - started
        scored = calibration.calibrated_scores(compact_logits(network, validation[0]), validation[1],
                                               compact_logits(network, test[0]), test[1], classes)
        networks.append(network)
        histories.append(history)
        members.append({"seed": seed, "epochs_run": len(history["loss"]), "train_seconds": round(seconds, 1),
                        "calibration": {key: scored["fitted"][key] for key in ("temperature", "set90_threshold")},
                        "test_scores": {**calibration.headline_scores(scored["metrics"]), "ece_raw": scored["ece_raw"]}})
    return networks, histories, members


def save_model_bundle(folder: Path, model, card: dict) -> Path:
    """Weights (state dict) and card.json into folder; returns the folder."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().float() for k, v in model.state_dict().items()}, folder / WEIGHTS_NAME)
    (folder / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return folder


def load_model_bundle(folder: Path = SHIPPED_DIR, member: int | None = None) -> dict:
    """{'model', 'model_id', 'classes', 'card', 'temperature', 'set90_threshold'} of a saved compact model (by
    default the shipped one).

    A card with `members` (an ensemble of training seeds) loads as ensemble.LogitMean of them; member=k loads only
    the k-th network, with its own calibration, and model_id `<ensemble id>/member<k>` (to score one draw alone)."""
    import torch

    folder = Path(folder)
    card_path, weights_path = folder / CARD_NAME, folder / WEIGHTS_NAME
    if not card_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(f"no compact model in {folder}: expected {CARD_NAME} and {WEIGHTS_NAME}")
    card = json.loads(card_path.read_text())
    settings = CompactSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["settings"].items()})
    n_members = len(card.get("members", [None]))
    if member is not None and not 0 <= member < n_members:
        raise ValueError(f"{folder}: member {member} asked for, the model has {n_members} member(s)")

    n_points, n_classes = int(card["n_points"]), len(card["classes"])
    state = torch.load(weights_path, weights_only=True)
    model, model_id, calibrated_by = build_compact_cnn(n_points, n_classes, settings), card["model_id"], card
    if n_members > 1 and member is None:
        from assets.pdf.ensemble import LogitMean

        model = LogitMean(n_points, n_classes, settings, n_members)
    elif n_members > 1:
        prefix = f"members.{member}."
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        model_id, calibrated_by = f"{model_id}/member{member}", card["members"][member]
    model.load_state_dict(state)
    model.eval()
    return {"model": model, "model_id": model_id, "classes": [int(c) for c in card["classes"]], "card": card,
            **card_calibration(calibrated_by)}


def card_calibration(card: dict) -> dict:
    """temperature and set90_threshold a card records: 1.0 (the raw softmax) and None (top-mass sets) for a model
    saved before calibration."""
    recorded = card.get("calibration", {})
    return {"temperature": float(recorded.get("temperature", 1.0)), "set90_threshold": recorded.get("set90_threshold")}


def settings_dict(settings: CompactSettings) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(settings).items()}
