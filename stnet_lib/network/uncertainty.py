"""Stage 3b — per-voxel uncertainty of ST-Net's CBV, CBF and Tmax: Monte-Carlo dropout, recalibrated.

Method (why this and not a deep ensemble: ``docs/decisions/0058-uncertainty-mc-dropout.md``):

1. The trunk (encoder, temporal pathways, fusion) runs once per voxel; the head, whose two
   dropout layers (p = ``STNetConfig.dropout``) are the network's only random part, runs
   ``n_samples`` times with dropout on. Sample k uses one pair of masks for every voxel — one
   thinned network, a draw of the weights — drawn from a generator seeded by ``seed``, so the
   SD maps do not depend on the batch size, the region or the order of the voxels.
2. The raw SD of a map is the standard deviation of its k decoded samples (physical units).
3. MC dropout is under-dispersed (its spread is the model's, not the noise's nor the
   mismatch between subjects'), so each map's SD is multiplied by a scale fitted on validation
   subjects: the one for which the nominal 90 % interval, estimate ± z₀.₉₅·scale·SD (z = 1.645,
   the estimate being the deterministic network's output), covers the truth on 90 % of their
   brain voxels. The scale is stored in the checkpoint (``payload["uncertainty"]``, plain
   types, :func:`calibrate_checkpoint`); a checkpoint without one gives uncalibrated SDs
   (scale 1, ``params["uncertainty"]["calibrated"] = False``).

:func:`coverage_table` measures the coverage at several nominal levels and
:func:`plot_reliability` draws it (nominal against observed, one line per map).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import norm

from .._validation import StnetInputError
from .stnet import TARGET_NAMES, STNet

__all__ = ["MC_SAMPLES", "NOMINAL", "LEVELS", "Calibration", "MCDropout", "z_value", "fit_scale",
           "interval_coverage", "coverage_table", "pooled_estimate_errors", "fit_calibration", "calibrate_checkpoint", "plot_reliability",
           "mc_for_checkpoint", "with_uncertainty"]

log = logging.getLogger(__name__)

#: Forward passes of the head per voxel (relative error of an SD from k samples ≈ 1/√(2(k−1)) = 13 %).
MC_SAMPLES = 30
#: The interval the scale is fitted for.
NOMINAL = 0.9
#: Nominal levels of the coverage table and the reliability plot.
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def z_value(level: float) -> float:
    """Half-width, in SDs, of the central normal interval holding ``level`` (0.9 → 1.645)."""
    if not 0 < level < 1:
        raise StnetInputError(f"a nominal coverage must lie between 0 and 1; got {level}")
    return float(norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class Calibration:
    """Per-map SD scales fitted on validation subjects; stored in the checkpoint as :meth:`to_dict`.

    Attributes
    ----------
    scale : dict
        Map name (``cbv``, ``cbf``, ``tmax``) → factor on the raw MC-dropout SD.
    nominal : float
        The interval coverage the scales were fitted for.
    n_samples : int
        MC samples per voxel used when fitting (inference uses the same).
    subjects : tuple of str
        The validation subjects; ``n_voxels`` their brain voxels.
    fitted_coverage : dict
        Map → coverage of the nominal interval on those voxels before scaling (scale 1).
    """

    scale: dict
    nominal: float = NOMINAL
    n_samples: int = MC_SAMPLES
    subjects: tuple = ()
    n_voxels: int = 0
    fitted_coverage: dict = field(default_factory=dict)
    method: str = "mc_dropout"

    def to_dict(self) -> dict:
        """Plain types only (a ``weights_only`` checkpoint entry)."""
        return {"method": self.method, "scale": {k: float(v) for k, v in self.scale.items()},
                "nominal": float(self.nominal), "n_samples": int(self.n_samples), "subjects": list(self.subjects),
                "n_voxels": int(self.n_voxels), "fitted_coverage": {k: float(v) for k, v in self.fitted_coverage.items()}}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        return cls(**{**values, "subjects": tuple(values.get("subjects", ()))})


class MCDropout:
    """The head's dropout masks of ``n_samples`` thinned networks, and the SD of their outputs.

    Parameters
    ----------
    model : STNet
    n_samples : int
    seed : int
        Seeds the masks (the same maps on every call).
    """

    def __init__(self, model: STNet, n_samples: int = MC_SAMPLES, seed: int = 0) -> None:
        if n_samples < 2:
            raise StnetInputError(f"Monte-Carlo dropout needs at least 2 samples; got {n_samples}")
        if model.config.dropout <= 0:
            raise StnetInputError("this ST-Net was trained without dropout (dropout = 0): it has no Monte-Carlo "
                                  "dropout uncertainty; retrain with dropout or leave out --uncertainty")
        keep = 1.0 - model.config.dropout
        first, second = model.head[1], model.head[4]
        generator = torch.Generator().manual_seed(seed)
        device = first.weight.device
        self.n_samples, self.keep = n_samples, keep
        self.masks_in = (torch.rand(n_samples, first.in_features, generator=generator) < keep).to(device)
        self.masks_hidden = (torch.rand(n_samples, second.in_features, generator=generator) < keep).to(device)

    def sd(self, model: STNet, features: torch.Tensor) -> torch.Tensor:
        """Raw SD (B, n_out), float32, physical units, of the head's outputs over the thinned networks.

        ``features`` (B, 64·T) from :meth:`STNet.features` (under the caller's autocast).
        """
        first, activation, second = model.head[1], model.head[2], model.head[4]
        samples = []
        for k in range(self.n_samples):
            hidden = activation(first(features * (self.masks_in[k] / self.keep).to(features.dtype)))
            out = second(hidden * (self.masks_hidden[k] / self.keep).to(hidden.dtype))
            samples.append(model.decode(out.float()))
        return torch.stack(samples).std(dim=0)


def fit_scale(error: np.ndarray, sd: np.ndarray, nominal: float = NOMINAL) -> float:
    """The factor s for which |error| ≤ z·s·sd holds on a fraction ``nominal`` of the voxels.

    Parameters
    ----------
    error, sd : ndarray, shape (n,)
        Estimate − truth and the raw SD of the same voxels (non-finite pairs and SD 0 ignored).
    """
    error, sd = np.asarray(error, float), np.asarray(sd, float)
    usable = np.isfinite(error) & np.isfinite(sd) & (sd > 0)
    if usable.sum() < 10:
        raise StnetInputError(f"too few voxels with a positive SD to calibrate ({int(usable.sum())}): give more "
                              "validation subjects")
    return float(np.quantile(np.abs(error[usable]) / sd[usable], nominal) / z_value(nominal))


def interval_coverage(error: np.ndarray, sd: np.ndarray, level: float) -> float:
    """Fraction of voxels whose truth lies within estimate ± z(level)·sd (``error`` = estimate − truth)."""
    error, sd = np.asarray(error, float), np.asarray(sd, float)
    usable = np.isfinite(error) & np.isfinite(sd)
    return float(np.mean(np.abs(error[usable]) <= z_value(level) * sd[usable]))


def coverage_table(errors: dict, sds: dict, levels=LEVELS):
    """Observed coverage of the nominal intervals, per map and level.

    Parameters
    ----------
    errors, sds : dict
        Map name → (n,) estimate − truth, and the (calibrated) SDs of the same voxels.
    levels : sequence of float

    Returns
    -------
    DataFrame
        ``map``, ``nominal``, ``observed``, ``n_voxels``.
    """
    import pandas as pd

    rows = [{"map": name, "nominal": float(level), "observed": interval_coverage(errors[name], sds[name], level),
             "n_voxels": int(np.isfinite(np.asarray(errors[name], float)).sum())}
            for name in errors for level in levels]
    return pd.DataFrame(rows)


def pooled_estimate_errors(cases, predict) -> tuple[dict, dict]:
    """Estimate − truth and SD per map over the brains of ``cases`` [(scan, truth)], the maps from ``predict(scan)``
    (raw SDs for an uncalibrated checkpoint, calibrated ones otherwise)."""
    errors, sds = {}, {}
    for scan, truth in cases:
        maps = predict(scan)
        brain = scan.brain_mask
        for name in TARGET_NAMES:
            if f"{name}_sd" not in maps.extra_volumes:
                continue
            errors.setdefault(name, []).append(getattr(maps, name)[brain] - np.asarray(truth[name])[brain])
            sds.setdefault(name, []).append(maps.extra_volumes[f"{name}_sd"][brain])
    return ({k: np.concatenate(v) for k, v in errors.items()}, {k: np.concatenate(v) for k, v in sds.items()})


def fit_calibration(checkpoint, cases, *, nominal: float = NOMINAL, n_samples: int = MC_SAMPLES,
                    subject_ids=(), **options) -> Calibration:
    """Fit each map's SD scale on validation ``cases`` [(scan, truth dict of ``cbv``, ``cbf``, ``tmax``)].

    ``checkpoint`` is a path or a loaded payload; ``options`` go to ``predict_maps`` (device, ...).
    """
    from .checkpoint import load_checkpoint
    from .inference import predict_maps

    global _FITTING
    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    raw = {k: v for k, v in payload.items() if k != "uncertainty"}  # scale 1
    _FITTING = True  # the raw SDs are what is being calibrated: no "uncalibrated" warning per subject
    try:
        errors, sds = pooled_estimate_errors(cases, lambda scan: predict_maps(scan, raw, uncertainty=True, mc_samples=n_samples,
                                                               **options))
    finally:
        _FITTING = False
    scale = {name: fit_scale(errors[name], sds[name], nominal) for name in errors}
    before = {name: interval_coverage(errors[name], sds[name], nominal) for name in errors}
    log.info("MC-dropout SD scales %s (coverage of the %.0f %% interval before: %s)", scale, 100 * nominal, before)
    return Calibration(scale, nominal, n_samples, tuple(map(str, subject_ids)),
                       int(len(next(iter(errors.values())))), before)


def calibrate_checkpoint(checkpoint, cases, out=None, **options) -> Calibration:
    """Fit the scales on ``cases`` (:func:`fit_calibration`) and store them in the checkpoint file.

    Writes ``out`` (default: over ``checkpoint``, atomically); returns the calibration.
    """
    from .checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(checkpoint)
    calibration = fit_calibration(payload, cases, **options)
    body = {k: v for k, v in payload.items() if k not in ("format", "format_version")}
    save_checkpoint({**body, "uncertainty": calibration.to_dict()}, out or checkpoint)
    return calibration


def plot_reliability(table, ax=None, *, title: str = "ST-Net uncertainty: reliability of the intervals"):
    """Observed against nominal coverage, one line per map, with the diagonal (perfect calibration).

    ``table`` from :func:`coverage_table`; returns the Figure (not saved).
    """
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfect calibration")
    for name, rows in table.groupby("map", sort=False):
        ax.plot(rows["nominal"], rows["observed"], marker="o", label=name.upper() if name != "tmax" else "Tmax")
    ax.set_xlabel("nominal coverage of estimate ± z·SD")
    ax.set_ylabel("observed coverage (fraction of voxels)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig


#: True while :func:`fit_calibration` samples the uncalibrated network (its warning would repeat per subject).
_FITTING = False


def mc_for_checkpoint(model: STNet, payload: dict, n_samples: int | None = None) -> tuple[MCDropout, Calibration | None]:
    """The sampler for a loaded checkpoint and its stored calibration (None: uncalibrated, logged).

    ``n_samples`` defaults to the calibration's (else :data:`MC_SAMPLES`): the scale was fitted
    for SDs of that many samples.
    """
    stored = payload.get("uncertainty")
    calibration = Calibration.from_dict(stored) if stored else None
    if calibration is None and not _FITTING:
        log.warning("this ST-Net checkpoint holds no uncertainty calibration: the SD maps are the raw Monte-Carlo "
                    "dropout spread, usually too narrow (calibrate it with uncertainty.calibrate_checkpoint)")
    n_samples = n_samples or (calibration.n_samples if calibration else MC_SAMPLES)
    return MCDropout(model, n_samples), calibration


def with_uncertainty(maps, sd: np.ndarray, voxels: np.ndarray, outputs, mc: MCDropout,
                     calibration: Calibration | None):
    """``maps`` with ``NAME_sd`` volumes (calibrated SDs, NaN outside ``voxels``) and ``params["uncertainty"]``.

    ``sd`` (n_voxels, n_out): the raw SDs of the voxels of ``voxels`` (C order), in ``outputs`` order.
    """
    scale = calibration.scale if calibration else {}
    for column, name in enumerate(outputs):
        volume = np.full(voxels.shape, np.nan)
        volume[voxels] = sd[:, column] * scale.get(name, 1.0)
        maps.extra_volumes[f"{name}_sd"] = volume
    maps.params["uncertainty"] = {"method": "mc_dropout", "n_samples": mc.n_samples, "calibrated": calibration is not None,
                                  "scale": {name: float(scale.get(name, 1.0)) for name in outputs},
                                  "nominal": calibration.nominal if calibration else None,
                                  "interval": "estimate ± z·SD (z = 1.645 for 90 %)"}
    return maps
