"""A tiny synthetic DSC cohort for the ST-Net tests (independent of ``stnet_lib.simulation``).

Each subject is a 10×10×2 series of 30 frames (TR 1.5 s, TE 30 ms): smooth CBF/CBV fields,
an exponential residue delayed by 0.5 s in normal tissue and 7.5 s in a hypoperfused disc
(truth Tmax = the delay), the arterial curve in voxel (0, 0, 0), Gaussian noise.
"""

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from curves import tissue_curves
from stnet_lib.manifest import write_manifest
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal

SHAPE, N_FRAMES, TR_S, TE_MS, S0 = (10, 10, 2), 30, 1.5, 30.0, 500.0


def make_subject(rng: np.random.Generator, *, lesion: bool = True) -> dict:
    """Signal (x, y, z, t), masks and truth maps of one subject."""
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    cbf = (25 + 35 * (0.5 + 0.5 * np.sin(x / 3.0 + rng.uniform(0, 6))))[..., None] * np.ones(SHAPE)
    mtt = rng.uniform(3.5, 5.5)
    disc = (x - rng.integers(3, 7)) ** 2 + (y - rng.integers(3, 7)) ** 2 <= 6
    in_lesion = lesion & disc[..., None] & np.ones(SHAPE, bool)
    cbf = np.where(in_lesion, 0.5 * cbf, cbf)
    cbv = cbf * np.where(in_lesion, 2 * mtt, mtt) / 60.0
    delay = np.where(in_lesion, 7.5, 0.5)
    c_tissue = np.zeros(SHAPE + (N_FRAMES,))
    for value in np.unique(delay):
        sel = delay == value
        c_aif, c_tissue[sel] = tissue_curves(cbf[sel], cbv[sel], delay_s=value, tr_s=TR_S, n_frames=N_FRAMES)
    delta_r2 = concentration_to_delta_r2(c_tissue, kind="tissue")
    delta_r2[0, 0, :] = concentration_to_delta_r2(c_aif, kind="arterial")
    signal = delta_r2_to_signal(delta_r2, S0, TE_MS) + rng.normal(0, 5.0, SHAPE + (N_FRAMES,))
    brain = np.ones(SHAPE, bool)
    brain[0, 0, :] = False
    aif = ~brain
    return {"signal": signal.astype(np.float32), "brain": brain, "aif": aif, "cbv": cbv, "cbf": cbf,
            "mtt": 60 * cbv / cbf, "tmax": delay, "lesion": in_lesion & brain}


def write_cohort(folder: Path, rng: np.random.Generator, splits=("train", "train", "val", "test")) -> Path:
    """Write one NIfTI folder per subject and ``data_manifest.csv``; return the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    rows = []
    for i, split in enumerate(splits):
        subject = make_subject(rng, lesion=i != 1)
        rows.append(write_subject(folder / f"sub-{i:02d}", subject, affine, split=split, tr_s=TR_S, te_ms=TE_MS))
    return write_manifest(pd.DataFrame(rows), folder / "data_manifest.csv")


def write_subject(sub: Path, subject: dict, affine: np.ndarray, *, split: str, tr_s: float, te_ms: float,
                  **columns) -> dict:
    """Write a subject's series, masks and truth maps into ``sub``; return its manifest row (plus ``columns``)."""
    sub.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(subject["signal"], affine)
    image.header.set_zooms((*np.abs(np.diag(affine)[:3]), tr_s))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, sub / "dsc.nii.gz")
    row = {"subject_id": sub.name, "split": split, "dsc": sub / "dsc.nii.gz", "te_ms": te_ms, "tr_s": tr_s, **columns}
    for name, key in (("brain_mask", "brain"), ("aif_mask", "aif"), ("lesion_mask", "lesion")):
        nib.save(nib.Nifti1Image(subject[key].astype(np.uint8), affine), sub / f"{name}.nii.gz")
        row[name] = sub / f"{name}.nii.gz"
    for name in ("cbv", "cbf", "mtt", "tmax"):
        nib.save(nib.Nifti1Image(subject[name].astype(np.float32), affine), sub / f"{name}.nii.gz")
        row[name] = sub / f"{name}.nii.gz"
    return row
