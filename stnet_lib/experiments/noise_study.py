"""The baselines' noise-robustness study: every method on cohort subjects at several SNRs.

* :func:`cohort_volume` — a subject of the synthetic cohort at a chosen SNR, as concentrations
  through the library's pipeline.
* :func:`noise_study` — every method on such subjects, against the truth and against its own
  noise-free result (the report's noise-robustness figure and the TTV tests);
  :func:`noise_study_summary` pools it per SNR and method.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..deconvolution.ttv import TTVConfig
from ..io import Scan
from ..pipeline import scan_concentrations
from ..simulation.realism import Realism
from ..simulation.subject import SubjectConfig, make_subject
from ..simulation.synthesis import add_rician_noise
from .ttv_tuning import TTVPhantom, estimate_errors, method_estimates, pooled_errors

__all__ = ["NOISE_FREE_SNR", "cohort_volume", "noise_study", "noise_study_summary"]


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

    The subject is simulated without the realism features of :class:`~stnet_lib.simulation.realism.Realism`
    (no plateau, non-steady frames, vessels, slice timing, correlated noise): this study isolates the
    deconvolution's robustness to noise, the question of issue #7. With them on, the biases that every
    method shares dominate (TTV's CBF RMSE 0.95× the best SVD method's at SNR 20 on 128×128 voxels of
    1.8 mm, against 0.84× without; docs/decisions/0071-noise-study-without-realism.md).
    """
    config = SubjectConfig(shape=tuple(shape), voxel_mm=tuple(voxel_mm), noise=False, has_lesion=has_lesion,
                           realism=Realism.none())
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
        Label → ``"ssvd"``, ``"csvd"``, ``"osvd"``, a (method, options) pair or a TTVConfig
        (default: all four at their defaults).
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
