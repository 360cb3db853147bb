"""Stage 1 (synthetic data): the optional "RAPID-like" reference maps of a subject.

The paper's network learned RAPID's maps, which carry the biases of a deconvolution estimator
(CBF low under dispersion and coarse sampling, Tmax late by the regularisation's smoothing). This
second target set is a fixed oSVD (oscillation index 0.035, the dsc-mri-toolbox default) run on
the subject's noise-free tissue curves with the true arterial curve (simulation_recipe.md §3.3,
DESIGN.md). Its Tmax is located between frames (eq. 7, :func:`stnet_lib.maps.tmax_eq7`), like the
truth's, and its lesion mask follows the rule of every hypoperfusion mask in the package,
:func:`stnet_lib.metrics.overlap.hypoperfusion_mask`: Tmax strictly greater than 6 s on the
continuous Tmax, so that "> 6 s" means the same in the reference, the truth and Table 1
(before issue #15 an estimated Tmax on a TR-2 s grid made it "≥ 8 s").
"""

from __future__ import annotations

import numpy as np

from ..constants import TMAX_THRESHOLD_S
from ..deconvolution import deconvolve
from ..metrics.overlap import hypoperfusion_mask

__all__ = ["RAPID_LIKE_METHOD", "RAPID_LIKE_OPTIONS", "rapid_like_maps"]

RAPID_LIKE_METHOD = "osvd"
RAPID_LIKE_OPTIONS = {"oi_threshold": 0.035}


def rapid_like_maps(subject) -> dict:
    """CBV, CBF, MTT, Tmax and the Tmax > 6 s mask of the fixed reference.

    Maps float32, NaN outside the brain; Tmax < 0 where a voxel peaks before the AIF.
    """
    brain = subject.masks["brain"]
    maps = deconvolve(subject.c_tissue.astype(np.float64), subject.c_aif, subject.tr_s, RAPID_LIKE_METHOD,
                      keep_residue=False, **RAPID_LIKE_OPTIONS)
    out = {}
    for name, values in maps.as_dict().items():
        volume = np.full(brain.shape, np.nan, np.float32)
        volume[brain] = values
        out[name] = volume
    out["lesion_mask"] = hypoperfusion_mask(out["tmax"], threshold_s=TMAX_THRESHOLD_S, mask=brain)
    return out
