"""Stage 3a: how TTV's weights and iterations are chosen, and how it compares with the SVD methods.

* :func:`make_ttv_phantom` — a small self-contained noisy volume with known truth (simulation
  recipe §0 defaults, Rician noise σ = S0/SNR), used by the tests and, where the synthetic cohort
  is absent, by ``bench/tune_ttv.py``.
* :func:`method_estimates` — CBF and Tmax of a set of methods on one volume.
* :func:`method_errors` — their CBF RMSE and Tmax mean absolute error against the truth;
  :func:`pooled_errors` pools those over volumes (per SNR, say).
* :func:`noise_study` — every method on cohort subjects at several SNRs, against the truth and
  against its own noise-free result (the report's noise-robustness figure and the TTV tests).
* :func:`grid_search` — the documented search over TTV's settings behind ``TTVConfig``'s
  defaults: the errors of every combination on every validation volume.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from scipy import ndimage
from tqdm.auto import tqdm

from ..constants import ARTERIAL_QUADRATIC_A, ARTERIAL_QUADRATIC_B, K_H, R2STAR_TISSUE_PER_MM_S, RHO_G_PER_ML
from ..maps import cbf_eq5, tmax_eq7
from .svd import csvd, osvd, ssvd
from .ttv import TTVConfig, ttv_residues

__all__ = ["TTVPhantom", "make_ttv_phantom", "method_estimates", "method_errors", "estimate_errors", "pooled_errors",
           "ratios_to_svd", "grid_search", "noise_study", "noise_study_summary"]


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
    s_t = _rician(rng, 1000.0 * np.exp(-te_s * R2STAR_TISSUE_PER_MM_S * c_t), 1000.0 / snr)
    s_a = _rician(rng, 1000.0 * np.exp(-te_s * (ARTERIAL_QUADRATIC_A * c_a + ARTERIAL_QUADRATIC_B * c_a**2)),
                  1000.0 / aif_snr)
    n_base = int(12.0 / tr_s)  # pre-bolus frames (the bolus arrives at 15 s)
    c_tissue = -np.log(s_t / s_t[:, :n_base].mean(1, keepdims=True)) / (te_s * R2STAR_TISSUE_PER_MM_S)
    dr2_a = np.clip(-np.log(s_a / s_a[:n_base].mean()) / te_s, 0.0, None)
    c_aif = (np.sqrt(ARTERIAL_QUADRATIC_A**2 + 4 * ARTERIAL_QUADRATIC_B * dr2_a) - ARTERIAL_QUADRATIC_A) / (
        2 * ARTERIAL_QUADRATIC_B)
    t_fine = np.arange(0.0, 40.0, 0.01)
    peak = np.array([t_fine[np.argmax(_dispersed_exponential(t_fine, m, d))] for m, d in zip(mtt.ravel(), disp.ravel())])
    return TTVPhantom(c_tissue=c_tissue.reshape(shape + (n_t,)), c_aif=c_aif, dt_s=tr_s, mask=np.ones(shape, bool),
                      cbf=cbf, tmax=delay + peak.reshape(shape))


def _svd_residues(method: str, c_tissue: NDArray, c_aif: NDArray, dt_s: float) -> tuple[NDArray, bool]:
    """Residues of an SVD method at its default threshold, and whether its Tmax wraps."""
    function = {"ssvd": ssvd, "csvd": csvd, "osvd": osvd}[method]
    k = function(torch.as_tensor(c_tissue, dtype=torch.float64), torch.as_tensor(c_aif, dtype=torch.float64), dt_s)
    return k.numpy(), method != "ssvd"


def method_estimates(c_tissue: NDArray, c_aif: NDArray, dt_s: float, mask: NDArray,
                     methods: dict[str, TTVConfig | str], *, device: str = "cpu") -> dict[str, tuple[NDArray, NDArray]]:
    """CBF [ml/100g/min] and Tmax [s] of each method at the voxels of ``mask`` (eq. 5 and 7).

    ``methods`` maps a label to ``"ssvd"``, ``"csvd"``, ``"osvd"`` (default thresholds) or a TTVConfig.
    """
    estimates = {}
    for label, method in methods.items():
        if isinstance(method, TTVConfig):
            k, wrap = ttv_residues(c_tissue, c_aif, dt_s, mask=mask, config=method, device=device)[mask], True
        else:
            k, wrap = _svd_residues(method, c_tissue[mask], c_aif, dt_s)
        estimates[label] = (cbf_eq5(k.max(-1)), tmax_eq7(k, dt_s, wrap=wrap))
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


def cohort_volume(rng: np.random.Generator, *, snr: float, shape=(64, 64, 6), voxel_mm=(3.6, 3.6, 5.0),
                  has_lesion: bool = True, noisy_aif: bool = True) -> TTVPhantom:
    """A subject of the synthetic cohort (:mod:`stnet_lib.simulation`) at a chosen SNR, as concentrations.

    The noise-free series gets Rician noise σ = median brain S0 / ``snr``; the curves go through the
    library's pipeline (eq. 1–2, AIF and VOF means, AIF divided by k_AV, eq. 8).

    With ``noisy_aif=False`` the tissue curves are noisy but the AIF, VOF and k_AV come from the
    noise-free series: the deconvolution alone is then compared. (At SNR 10 the few arterial
    voxels of a 64×64×6 subject reach the Rician noise floor at the bolus peak, which cuts the AIF's
    peak by up to 45 % and its area by up to 30 %: a global CBF scale error that every method
    shares through the same curve, and that masks the deconvolution's own noise robustness.)
    """
    import nibabel as nib

    from ..io import Scan
    from ..pipeline import scan_concentrations
    from ..simulation.subject import SubjectConfig, make_subject
    from ..simulation.synthesis import add_rician_noise

    config = SubjectConfig(shape=tuple(shape), voxel_mm=tuple(voxel_mm), noise=False, has_lesion=has_lesion)
    subject = make_subject(config, rng)
    brain = subject.masks["brain"]
    baseline = slice(0, subject.params["n_baseline_frames"] - 1)

    def concentrations(signal):
        scan = Scan(signal=signal, affine=subject.affine, header=nib.Nifti1Header(), te_ms=subject.te_ms,
                    tr_s=subject.tr_s, aif_mask=subject.masks["aif"], brain_mask=brain,
                    vof_mask=subject.masks["vof"], field_t=subject.field_t)
        return scan_concentrations(scan, baseline=baseline)

    clean = subject.signal.astype(np.float64)
    noisy = add_rician_noise(clean.copy(), float(np.median(clean[brain][:, 0])) / snr, rng)
    conc = concentrations(noisy)
    arterial = conc if noisy_aif else concentrations(clean)
    c_tissue = np.zeros(brain.shape + conc.c_tissue.shape[-1:])
    c_tissue[brain] = conc.c_tissue
    return TTVPhantom(c_tissue=c_tissue, c_aif=arterial.c_aif / arterial.k_av, dt_s=subject.tr_s, mask=brain,
                      cbf=np.nan_to_num(subject.truth["cbf"]), tmax=np.nan_to_num(subject.truth["tmax"]))


#: Rician σ = median brain S0 / 1e7: the series without noise, through the same pipeline.
NOISE_FREE_SNR = 1e7


def noise_study(seeds, snrs, methods: dict[str, TTVConfig | str] | None = None, *, shape=(64, 64, 6),
                voxel_mm=(3.6, 3.6, 5.0), device: str = "cpu", progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every method on cohort subjects at several noise levels, against the truth and against itself.

    Each seed gives one subject (:func:`cohort_volume`, the AIF from the noise-free series: its
    own noise is an error that every method shares), deconvolved without noise and at each SNR.

    Parameters
    ----------
    seeds : iterable of int
        One subject per seed.
    snrs : iterable of float
        Rician noise levels on the tissue curves (σ = median brain S0 / SNR).
    methods : dict, optional
        Label → ``"ssvd"``, ``"csvd"``, ``"osvd"`` or a TTVConfig (default: all four at their defaults).
    shape : tuple of int
        Subject grid (x, y, z).
    voxel_mm : tuple of float
        Voxel size [mm] (the paper's is 0.9×0.9×5 on a 256×256 grid).
    device : str
        Where TTV runs (the SVD methods run on the CPU).
    progress : bool
        Show a progress bar over the volumes.

    Returns
    -------
    errors : DataFrame
        :func:`method_errors`' table against the truth, with ``seed`` and ``snr``.
    noise_induced : DataFrame
        The same columns, with ``cbf_rmse`` the RMSE of each method's CBF on the noisy volume
        against its own CBF on the noise-free one (the error that noise adds), ``cbf_bias`` that
        difference's mean, and ``tmax_mae_s`` the same for Tmax.
    """
    methods = {"ssvd": "ssvd", "csvd": "csvd", "osvd": "osvd", "ttv": TTVConfig()} if methods is None else methods
    seeds, snrs = list(seeds), list(snrs)
    errors, noise_induced = [], []
    with tqdm(total=len(seeds) * (len(snrs) + 1), desc="noise study", unit="volume", disable=not progress) as bar:
        for seed in seeds:
            clean = cohort_volume(np.random.default_rng(seed), snr=NOISE_FREE_SNR, shape=shape, voxel_mm=voxel_mm,
                                  noisy_aif=False)
            reference = method_estimates(clean.c_tissue, clean.c_aif, clean.dt_s, clean.mask, methods, device=device)
            bar.update()
            for snr in snrs:
                volume = cohort_volume(np.random.default_rng(seed), snr=snr, shape=shape, voxel_mm=voxel_mm,
                                       noisy_aif=False)
                estimates = method_estimates(volume.c_tissue, volume.c_aif, volume.dt_s, volume.mask, methods,
                                             device=device)
                keys = {"seed": seed, "snr": snr}
                errors.append(estimate_errors(estimates, volume.cbf[volume.mask], volume.tmax[volume.mask])
                              .assign(**keys))
                noise_induced += [estimate_errors({label: estimates[label]}, *reference[label]).assign(**keys)
                                  for label in estimates]  # each method against itself without noise
                bar.update()
    return pd.concat(errors, ignore_index=True), pd.concat(noise_induced, ignore_index=True)


def noise_study_summary(errors: pd.DataFrame, noise_induced: pd.DataFrame) -> pd.DataFrame:
    """Per SNR and method, pooled over subjects: CBF RMSE, bias and Tmax MAE against the truth, and the
    noise-induced CBF RMSE (:func:`noise_study`); one row per SNR and method."""
    truth = pooled_errors(errors, ["snr"])
    noise = pooled_errors(noise_induced, ["snr"])[["snr", "method", "cbf_rmse"]]
    return truth.merge(noise.rename(columns={"cbf_rmse": "noise_cbf_rmse"}), on=["snr", "method"])
