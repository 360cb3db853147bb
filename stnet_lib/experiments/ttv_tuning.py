"""How TTV's weights and iterations are chosen, and how each method's errors are measured (a study).

* :func:`make_ttv_phantom` — a small self-contained noisy volume with known truth (simulation
  recipe §0 defaults, Rician noise σ = S0/SNR), used by the tests and, where the synthetic cohort
  is absent, by ``bench/tune_ttv.py``.
* :func:`method_estimates` — CBF and Tmax of a set of methods on one volume, through
  :func:`stnet_lib.deconvolution.deconvolve` (the one ``METHODS`` registry).
* :func:`method_errors` — their CBF RMSE and Tmax mean absolute error against the truth;
  :func:`pooled_errors` pools those over volumes (per SNR, say); :func:`ratios_to_svd` gives
  issue #7's ratios.
* :func:`grid_search` — the documented search over TTV's settings behind ``TTVConfig``'s
  defaults (docs/decisions/0020-ttv-default-weights.md): the errors of every combination on every
  validation volume.

The noise study on cohort subjects is :mod:`stnet_lib.experiments.noise_study`.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage

from ..constants import K_H, RHO_G_PER_ML, relaxivities
from ..deconvolution import METHODS, deconvolve
from ..deconvolution.ttv import TTVConfig
from ..signal import delta_r2_to_concentration, signal_to_delta_r2

__all__ = ["TTVPhantom", "make_ttv_phantom", "method_estimates", "method_errors", "estimate_errors", "pooled_errors",
           "ratios_to_svd", "grid_search"]

#: Field strength of the phantom [T] (its relaxivities).
PHANTOM_FIELD_T = 1.5


@dataclasses.dataclass
class TTVPhantom:
    """A noisy synthetic volume and its truth.

    Attributes
    ----------
    c_tissue : ndarray, shape (x, y, z, t)
        Tissue concentration [mM] from the noisy signal.
    c_aif : ndarray, shape (t,)
        Arterial concentration [mM] from the (less) noisy arterial signal.
    dt_s : float
        Frame interval [s].
    mask : ndarray of bool, shape (x, y, z)
    cbf, tmax : ndarray, shape (x, y, z)
        Truth [ml/100g/min] and [s] (Tmax = delay + argmax of the dispersed residue).
    """

    c_tissue: NDArray
    c_aif: NDArray
    dt_s: float
    mask: NDArray
    cbf: NDArray
    tmax: NDArray


def _smooth_field(rng: np.random.Generator, shape, sigma_vox: float) -> NDArray:
    """Gaussian-filtered white noise rescaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="wrap")
    return (field - field.min()) / (field.max() - field.min())


def _aif(time_s: NDArray, peak_mm: float = 6.0, t0_s: float = 15.0) -> NDArray:
    """Gamma-variate first pass (α 3, β 1.5 s) plus a recirculation of 10 % of its area."""
    lag = np.clip(time_s - t0_s, 0.0, None) / 1.5
    first = lag**3 * np.exp(-lag)
    first *= peak_mm / first.max()
    dt = time_s[1] - time_s[0]
    delayed = np.interp(time_s - 8.0, time_s, first, left=0.0)
    return first + 0.1 * np.convolve(delayed, np.exp(-time_s / 10.0) / 10.0 * dt)[: time_s.size]


def _dispersed_exponential(t: NDArray, mtt: NDArray, disp: NDArray) -> NDArray:
    """exp(−t/MTT) ⊗ (1/d)·exp(−t/d), zero for t ≤ 0 (closed form; d = 0: the bare exponential)."""
    tc = np.clip(t, 0.0, None)
    d = np.maximum(disp, 1e-3)
    return np.where(t > 0, mtt / (mtt - d) * (np.exp(-tc / mtt) - np.exp(-tc / d)), 0.0)


def _rician(rng: np.random.Generator, signal: NDArray, sigma: float) -> NDArray:
    return np.hypot(signal + sigma * rng.standard_normal(signal.shape), sigma * rng.standard_normal(signal.shape))


def make_ttv_phantom(rng: np.random.Generator, *, shape=(32, 32, 4), n_t: int = 50, tr_s: float = 1.5,
                     snr: float = 20.0, aif_snr: float = 100.0, te_ms: float = 30.0) -> TTVPhantom:
    """Smooth GM/WM mixture with a delayed, dispersed hypoperfused blob (recipe §0 and §9 defaults).

    CBF = 60p + 25(1 − p), CBV = 4p + 2(1 − p) (p a smooth GM fraction); normal delay 0–1.5 s and
    dispersion 0–1 s (smooth fields); in a blob CBF × 0.4, CBV × 1.1, delay up to +6 s, dispersion
    3 s. Exponential residues, curves on a 0.05 s grid sampled every TR, 1.5 T relaxivities,
    Rician noise σ = S0/``snr`` (tissue) and S0/``aif_snr`` (the averaged AIF).
    """
    te_s, dt_fine = te_ms / 1000.0, 0.05
    rel = relaxivities(PHANTOM_FIELD_T)
    time_fine = np.arange(0.0, n_t * tr_s, dt_fine)
    c_a = _aif(time_fine)
    p = _smooth_field(rng, shape, 3.0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"), -1)
    blob = np.exp(-np.sum((grid - [0.3, -0.2, 0.0]) ** 2 / [0.15, 0.15, 2.0], -1))
    lesion = blob > 0.5
    cbf = np.where(lesion, 0.4, 1.0) * (60 * p + 25 * (1 - p))
    cbv = np.where(lesion, 1.1, 1.0) * (4 * p + 2 * (1 - p))
    delay = 1.5 * _smooth_field(rng, shape, 3.0) + np.where(lesion, 6.0 * blob, 0.0)
    disp = np.where(lesion, 3.0, _smooth_field(rng, shape, 3.0))
    mtt = 60.0 * cbv / cbf
    r_eff = _dispersed_exponential(time_fine - delay.reshape(-1, 1), mtt.reshape(-1, 1), disp.reshape(-1, 1))
    n_fft = 2 * time_fine.size
    conv = np.fft.irfft(np.fft.rfft(r_eff, n_fft) * np.fft.rfft(c_a, n_fft), n_fft)[:, : time_fine.size]
    step = int(round(tr_s / dt_fine))
    c_t = (RHO_G_PER_ML / K_H) * (cbf.reshape(-1, 1) / 6000.0) * conv[:, ::step] * dt_fine
    c_a = c_a[::step]
    s_t = _rician(rng, 1000.0 * np.exp(-te_s * rel["r2star_tissue"] * c_t), 1000.0 / snr)
    s_a = _rician(rng, 1000.0 * np.exp(-te_s * (rel["arterial_a"] * c_a + rel["arterial_b"] * c_a**2)),
                  1000.0 / aif_snr)
    baseline = slice(0, int(12.0 / tr_s))  # pre-bolus frames (the bolus arrives at 15 s)
    c_tissue = delta_r2_to_concentration(signal_to_delta_r2(s_t, te_ms, baseline=baseline).delta_r2_per_s,
                                         kind="tissue", field_t=PHANTOM_FIELD_T)
    dr2_a = np.clip(signal_to_delta_r2(s_a, te_ms, baseline=baseline).delta_r2_per_s, 0.0, None)
    c_aif = delta_r2_to_concentration(dr2_a, kind="arterial", field_t=PHANTOM_FIELD_T)
    t_fine = np.arange(0.0, 40.0, 0.01)
    peak = np.array([t_fine[np.argmax(_dispersed_exponential(t_fine, m, d))] for m, d in zip(mtt.ravel(), disp.ravel())])
    return TTVPhantom(c_tissue=c_tissue.reshape(shape + (n_t,)), c_aif=c_aif, dt_s=tr_s, mask=np.ones(shape, bool),
                      cbf=cbf, tmax=delay + peak.reshape(shape))


def method_estimates(c_tissue: NDArray, c_aif: NDArray, dt_s: float, mask: NDArray,
                     methods: dict[str, TTVConfig | str | tuple[str, dict]], *,
                     device: str = "cpu") -> dict[str, tuple[NDArray, NDArray]]:
    """CBF [ml/100g/min] and Tmax [s] of each method at the voxels of ``mask`` (eq. 5 and 7).

    ``methods`` maps a label to a key of ``METHODS`` (its default options), a (key, options) pair
    or a TTVConfig. Each goes through :func:`~stnet_lib.deconvolution.deconvolve`; TTV runs on
    ``device``, the voxel-wise methods on the CPU.
    """
    estimates = {}
    for label, method in methods.items():
        if isinstance(method, TTVConfig):
            name, options = "ttv", dataclasses.asdict(method)
        else:
            name, options = (method, {}) if isinstance(method, str) else method
        where = device if METHODS[name].spatial else "cpu"
        maps = deconvolve(c_tissue, c_aif, dt_s, name, mask=mask, device=where, keep_residue=False, **options)
        estimates[label] = (maps.cbf[mask], maps.tmax[mask])
    return estimates


def method_errors(c_tissue: NDArray, c_aif: NDArray, dt_s: float, mask: NDArray, cbf_true: NDArray,
                  tmax_true: NDArray, methods: dict[str, TTVConfig | str], *, device: str = "cpu") -> pd.DataFrame:
    """CBF RMSE [ml/100g/min], CBF bias and Tmax mean absolute error [s] of each method in ``mask``.

    ``methods`` maps a label to ``"ssvd"``, ``"csvd"``, ``"osvd"`` (default thresholds) or a TTVConfig.
    The table also holds ``n_voxels``, so that errors can be pooled over volumes (:func:`pooled_errors`).
    """
    estimates = method_estimates(c_tissue, c_aif, dt_s, mask, methods, device=device)
    return estimate_errors(estimates, cbf_true[mask], tmax_true[mask])


def estimate_errors(estimates: dict[str, tuple[NDArray, NDArray]], cbf_true: NDArray,
                    tmax_true: NDArray) -> pd.DataFrame:
    """The table of :func:`method_errors` from :func:`method_estimates`' output and the truth at the same voxels."""
    rows = []
    for label, (cbf, tmax) in estimates.items():
        cbf_error, tmax_error = cbf - cbf_true, tmax - tmax_true
        rows.append({"method": label, "cbf_rmse": float(np.sqrt(np.mean(cbf_error**2))),
                     "cbf_bias": float(np.mean(cbf_error)), "tmax_mae_s": float(np.mean(np.abs(tmax_error))),
                     "n_voxels": int(cbf.size)})
    return pd.DataFrame(rows)


def pooled_errors(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Errors of :func:`method_errors` tables pooled over the voxels of all volumes in each group.

    CBF RMSE is the root of the voxel-weighted mean squared error, bias and Tmax MAE are voxel-weighted
    means; one row per ``by`` group and method.
    """
    weights = table["n_voxels"]
    frame = table.assign(cbf_mse=table["cbf_rmse"] ** 2 * weights, cbf_bias=table["cbf_bias"] * weights,
                         tmax_mae_s=table["tmax_mae_s"] * weights)
    sums = frame.groupby(by + ["method"])[["cbf_mse", "cbf_bias", "tmax_mae_s", "n_voxels"]].sum()
    return pd.DataFrame({"cbf_rmse": np.sqrt(sums["cbf_mse"] / sums["n_voxels"]),
                         "cbf_bias": sums["cbf_bias"] / sums["n_voxels"],
                         "tmax_mae_s": sums["tmax_mae_s"] / sums["n_voxels"]}).reset_index()


def ratios_to_svd(table: pd.DataFrame, by: list[str], method: str = "ttv") -> pd.DataFrame:
    """Issue #7's comparisons per ``by`` group of an errors table: ``method``'s CBF RMSE over the best of
    sSVD, cSVD and oSVD (``cbf_ratio``), and its Tmax MAE over the better of cSVD and oSVD (``tmax_ratio``)."""
    cbf = table.pivot_table(index=by, columns="method", values="cbf_rmse")
    tmax = table.pivot_table(index=by, columns="method", values="tmax_mae_s")
    return pd.DataFrame({"cbf_ratio": cbf[method] / cbf[["ssvd", "csvd", "osvd"]].min(axis=1),
                         "tmax_ratio": tmax[method] / tmax[["csvd", "osvd"]].min(axis=1)})


def grid_search(volumes: dict[str, TTVPhantom], grid: dict[str, tuple], *, base: TTVConfig = TTVConfig(),
                device: str = "cpu") -> pd.DataFrame:
    """Errors of every combination of ``grid`` (TTVConfig field → values) on every volume.

    One row per setting and volume label: the grid's fields, ``volume``, ``cbf_rmse``,
    ``cbf_bias`` and ``tmax_mae_s`` (see :func:`method_errors`).
    """
    fields = list(grid)
    configs = {values: dataclasses.replace(base, **dict(zip(fields, values)))
               for values in itertools.product(*grid.values())}
    tables = []
    for label, vol in volumes.items():
        table = method_errors(vol.c_tissue, vol.c_aif, vol.dt_s, vol.mask, vol.cbf, vol.tmax, configs, device=device)
        tables.append(table.assign(volume=label))
    table = pd.concat(tables, ignore_index=True)
    table[fields] = pd.DataFrame(table.pop("method").tolist())
    return table
