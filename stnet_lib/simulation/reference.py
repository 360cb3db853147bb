"""Stage 1 (synthetic data): the optional "RAPID-like" reference maps of a subject.

The paper's network learned RAPID's maps, which carry the biases of a deconvolution estimator
(CBF low under dispersion and coarse sampling, Tmax on the frame grid). This second target set
is a fixed oSVD (oscillation index 0.035, the dsc-mri-toolbox default) run on the subject's
noise-free tissue curves with the true arterial curve (simulation_recipe.md §3.3, DESIGN.md).
"""

from __future__ import annotations

import numpy as np

from ..constants import TMAX_THRESHOLD_S
from ..deconvolution import deconvolve

__all__ = ["RAPID_LIKE_METHOD", "RAPID_LIKE_OPTIONS", "rapid_like_maps"]

RAPID_LIKE_METHOD = "osvd"
RAPID_LIKE_OPTIONS = {"oi_threshold": 0.035}


def rapid_like_maps(subject) -> dict:
    """CBV, CBF, MTT, Tmax (float32, NaN outside the brain) and the Tmax > 6 s mask of the fixed reference."""
    brain = subject.masks["brain"]
    maps = deconvolve(subject.c_tissue.astype(np.float64), subject.c_aif, subject.tr_s, RAPID_LIKE_METHOD,
                      keep_residue=False, **RAPID_LIKE_OPTIONS)
    out = {}
    for name, values in maps.as_dict().items():
        volume = np.full(brain.shape, np.nan, np.float32)
        volume[brain] = values
        out[name] = volume
    out["lesion_mask"] = brain & (np.nan_to_num(out["tmax"]) > TMAX_THRESHOLD_S)
    return out
