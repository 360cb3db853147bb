"""stnet: quantitative DSC-MRI perfusion maps with ST-Net and classical deconvolution.

The pipeline, in the order of the paper's Methods (Cao et al.):

1. ``simulation``      synthetic stroke cohort with exact ground truth
2. ``signal``          signal → ΔR2* → concentration (eq. 1–2)
3. ``deconvolution``   sSVD, cSVD, oSVD, TTV (eq. 3);  ``network``: ST-Net and its physics loss (eq. 9)
4. ``maps``            CBV, CBF, MTT, Tmax from residues (eq. 4–8)
5. ``metrics``         PSNR, SSIM, PCC, SCC, NRMSE, Dice, IoU, HD95, AUC; ``evaluation`` tables
6. notebooks           tables and figures in ``reports/<profile>/``

Entry points: ``load_scan`` → ``compute_maps`` for NIfTI scans, ``deconvolution.deconvolve``
for curve arrays, ``manifest.load_manifest`` for cohorts, and the ``stnet`` command.
"""

__version__ = "0.1.0"

from .io import Scan, load_scan, save_maps  # noqa: E402
from .maps import PerfusionMaps  # noqa: E402
from .pipeline import compute_maps  # noqa: E402

__all__ = ["__version__", "Scan", "load_scan", "save_maps", "PerfusionMaps", "compute_maps"]
