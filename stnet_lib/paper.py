"""The paper's published numbers, once, to be set beside ours in every table of ``reports/``.

Source: Cao et al., "Quantitative perfusion maps using a novelty spatiotemporal convolutional
neural network" (ST-Net), Tables 1–2 and the timing paragraph of the Results; the authors' code is
github.com/muccaoanbo/Code_ST-Net. Their data: 138 acute-stroke DSC-MRI patients (256×256×20 voxels
× 50 frames), RAPID maps as reference; 52 training/validation patients with lesion labels; 86 test
patients, 18 of them with lesion labels. "Fang" is the tensor-total-variation deconvolution of
Fang et al. (IEEE TMI 2015, doi:10.1109/TMI.2015.2405015), our method ``"ttv"``.

Only the values quoted in the project's design notes (``../shared/DESIGN.md``) are here; a cell
the paper reports but that is not listed stays absent rather than guessed.
"""

from __future__ import annotations

__all__ = ["CITATION", "PAPER_METHODS", "TABLE1", "TABLE1_N_SUBJECTS", "ROC_OPTIMAL_THRESHOLD_S",
           "TABLE2_WB", "TABLE2_N_SUBJECTS", "SECONDS_PER_10K_VOXELS", "TIMING_DEVICE", "TIMING_BATCH"]

CITATION = ('Cao et al., "Quantitative perfusion maps using a novelty spatiotemporal convolutional neural '
            'network" (ST-Net); code github.com/muccaoanbo/Code_ST-Net')

#: The paper's method names → ours.
PAPER_METHODS = {"ST-Net": "stnet", "Fang": "ttv"}

#: Table 1: Tmax hypoperfusion segmentation (Tmax > 6 s) on the 18 labelled test patients.
#: Keys: our method name → metric (``stnet_lib.evaluation.SEGMENTATION_METRICS`` names) → mean.
TABLE1 = {
    "stnet": {"auc": 0.974, "dice": 0.859, "iou": 0.765, "hd95_mm": 9.268},
    "ttv": {"auc": 0.900, "dice": 0.774, "iou": 0.645, "hd95_mm": 11.312},
}
TABLE1_N_SUBJECTS = 18
#: Mean ROC operating point minimising |TPR − (1 − FPR)| of ST-Net's Tmax [s] (vs the clinical 6 s).
ROC_OPTIMAL_THRESHOLD_S = 6.484

#: Table 2: whole-brain (WB) map agreement of ST-Net with the RAPID maps, 86 test patients, in the
#: authors' convention (per-slice min–max, 1-D SSIM and PSNR; ``convention="paper"``).
#: Keys: map → metric → mean.
TABLE2_WB = {
    "cbv": {"ssim": 0.952, "psnr": 31.6},
    "cbf": {"ssim": 0.943, "psnr": 29.1},
    "tmax": {"ssim": 0.863, "psnr": 23.4},
}
TABLE2_N_SUBJECTS = 86

#: Seconds per 10,000 brain voxels (inference for ST-Net, deconvolution for Fang's TTV).
SECONDS_PER_10K_VOXELS = {"stnet": 0.77, "ttv": 6.9}
TIMING_DEVICE = "NVIDIA A100"
TIMING_BATCH = 512
