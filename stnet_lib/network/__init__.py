"""Stage 3b — ST-Net (Cao et al.): the network, its physics loss, training and inference.

All in torch, as are the deconvolution methods (:mod:`stnet_lib.deconvolution`) and eq. 1–2 on
tensors (:mod:`stnet_lib.signal`); the device is chosen by :func:`stnet_lib.device.resolve_device`.

Modules, in data order: ``inputs`` (time resampling, normalisation, reference curves),
``patches`` (7×7×T patches cut on the fly), ``stnet`` (``STNetConfig``, ``STNet``),
``physics_loss`` (eq. 9), ``cohort`` (subjects in memory, per-epoch sampling), ``train``
(fit loop, checkpoints, resume, DDP), ``checkpoint`` (safe load/save), ``alignment`` (an AIF the
tissue arrives with, read earlier: Tmax kept in the trained range), ``inference``
(whole-brain ``predict_maps``), ``precision`` (bf16 autocast where the device has it natively),
``uncertainty`` (Monte-Carlo dropout SDs with a per-map calibration). The weights that ship with the
package are in :mod:`stnet_lib.weights`.
"""

from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .inference import predict_maps
from .physics_loss import implied_tissue_integral, stnet_loss
from .stnet import STNet, STNetConfig, TARGET_NAMES
from .train import TrainConfig, fit, load_cohorts, train_from_manifest

__all__ = [
    "STNet",
    "STNetConfig",
    "TARGET_NAMES",
    "TrainConfig",
    "fit",
    "train_from_manifest",
    "load_cohorts",
    "predict_maps",
    "stnet_loss",
    "implied_tissue_integral",
    "load_checkpoint",
    "save_checkpoint",
    "model_from_checkpoint",
]
