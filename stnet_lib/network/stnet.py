"""Stage 3b — ST-Net, the spatiotemporal CNN of Cao et al. (eq. 9 loss in ``physics_loss``).

For every brain voxel the network reads a 7×7 in-plane patch of the (normalised) DSC series
over ``n_frames`` frames plus two reference curves (the voxel's baseline signal repeated over
time and the arterial curve), and regresses CBV, CBF and Tmax. MTT follows from eq. 6,
MTT = 60·CBV/CBF. ``STNetConfig.outputs`` may name a subset of these maps (the paper's
"one output against three" ablation, Fig. 3): the head then has one unit per named map and
the network predicts only those.

The layer list reproduces the authors' ``model/network_model_ST.py`` (see
``reference/anchors_software.md`` §1.1); this file is written from that description, not
copied. Departures, all deliberate:

* the number of frames is a parameter (theirs hard-wires 64·50 in the first FC layer);
* no ``torch.cuda.FloatTensor`` casts in ``forward``: the same module runs on CPU and GPU;
* the input is normalised (``inputs.py``: by default tissue and arterial concentrations
  divided by the mean arterial concentration, the baseline channel by the subject's median
  brain baseline); the authors fed raw scanner units, which ties a model to one scanner's
  gain, echo time and field strength;
* targets are standardised with the training set's mean and standard deviation per map
  (theirs divided by constants 129.86, 655.35, 56.0 of unstated origin); both live in
  :class:`STNetConfig`, so every checkpoint decodes its own outputs.

Where the paper's text and the authors' code disagree:

* one LeakyReLU in the head, after the first fully connected layer, as in their code (the text
  has one after each FC layer; the outputs are standardised regression targets):
  ``docs/decisions/0055-stnet-head-activation.md``;
* the two extra channels in the text's order, the voxel's baseline first, then the arterial
  curve (their code stacks the AIF first): ``docs/decisions/0056-reference-channel-order.md``;
* the physics loss's haematocrit factor as in eq. 4 (their code and the printed physics term
  invert it, a factor k_H² ≈ 0.54): ``docs/decisions/0026-physics-loss-as-written.md``.

Checkpoints written before ``outputs`` existed have no such key in their stored config and
load as three-output networks (the field's default).

References
----------
Cao et al., "Quantitative perfusion maps using a novelty spatiotemporal convolutional
neural network" (ST-Net). Code: github.com/muccaoanbo/Code_ST-Net (no licence).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..constants import K_H, RHO_G_PER_ML

__all__ = ["STNetConfig", "STNet", "TARGET_NAMES"]

#: Network outputs, in this order (MTT is derived, eq. 6).
TARGET_NAMES = ("cbv", "cbf", "tmax")


def _check_outputs(outputs: tuple[str, ...]) -> None:
    canonical = tuple(name for name in TARGET_NAMES if name in outputs)
    if not outputs or canonical != tuple(outputs):
        raise ValueError(f"outputs must be a non-empty subset of {TARGET_NAMES}, without repeats and in that "
                         f"order; got {tuple(outputs)!r}")


@dataclass(frozen=True)
class STNetConfig:
    """Everything needed to rebuild an ST-Net and to feed it; stored in every checkpoint.

    Attributes
    ----------
    n_frames : int
        Frames T the network reads (the paper: 50). Scans on another grid are resampled.
    dt_s : float
        Frame interval [s] of the training data; inference resamples scans onto it.
    patch_size : int
        In-plane patch side (7: the unpadded 3×3 convolutions take 7 → 5 → 3 → 1).
    spatial_channels : tuple of int
        Channels of the four 3-D convolutions of the spatial encoder.
    temporal_channels : int
        Channels of the merge convolution, the pathways and the fusion convolutions.
    pathway_out_channels : int
        Output channels of the last layer of each pathway (concatenated: 2× this).
    global_dilations : tuple of int
        Dilations of the global pathway (receptive field 1 + 2·Σ = 75 frames).
    fc_hidden : int
        Width of the first fully connected layer.
    dropout : float
        Dropout probability before each fully connected layer.
    leaky_slope : float
        Negative slope of the LeakyReLU after the first fully connected layer.
    target_mean, target_std : tuple of float, optional
        Standardisation of the outputs (CBV [ml/100g], CBF [ml/100g/min], Tmax [s], those of
        ``outputs``, one value each): the network predicts (y − mean)/std. Set from the
        training voxels by ``train.fit``; None (the default) is mean 0 and std 1 per output.
    kh, rho : float
        Constants of eq. 4 used by the physics loss ((1−H_LV)/(1−H_SV), ρ [g/ml]); k_AV is each
        subject's own (eq. 8).
    vof_correction : bool
        Trained with k_AV from a venous output (eq. 8); inference then wants a VOF mask too.
    input_normalisation : str
        ``"concentration"`` or ``"signal_ratio"`` (see ``stnet_lib.network.inputs``).
    outputs : tuple of str
        The maps the network regresses: a non-empty subset of :data:`TARGET_NAMES` in that
        order (default all three; ``("cbf",)`` is a single-output network with a one-unit
        head). Decision for the physics loss: eq. 9's physics term needs the predicted CBV,
        so a network without a ``"cbv"`` output has no physics term and must be trained with
        ``physics_weight = 0`` (``train.fit`` refuses any other weight; ``physics_loss``).
        Inference yields only the predicted maps (MTT only when both CBV and CBF are).
    """

    n_frames: int = 50
    dt_s: float = 1.5
    patch_size: int = 7
    spatial_channels: tuple[int, ...] = (8, 16, 32, 64)
    temporal_channels: int = 64
    pathway_out_channels: int = 32
    global_dilations: tuple[int, ...] = (1, 3, 8, 25)
    fc_hidden: int = 256
    dropout: float = 0.5
    leaky_slope: float = 0.01
    target_mean: tuple[float, ...] | None = None  # None: 0 per output
    target_std: tuple[float, ...] | None = None  # None: 1 per output
    kh: float = K_H
    rho: float = RHO_G_PER_ML
    input_normalisation: str = "concentration"
    vof_correction: bool = False
    outputs: tuple[str, ...] = TARGET_NAMES

    def __post_init__(self) -> None:
        """Check the fields that the layer arithmetic depends on."""
        if self.patch_size != 2 * (len(self.spatial_channels) - 1) + 1:
            raise ValueError(
                f"patch_size must be {2 * (len(self.spatial_channels) - 1) + 1} for "
                f"{len(self.spatial_channels)} spatial convolutions; got {self.patch_size}"
            )
        if self.n_frames < 2 or self.dt_s <= 0:
            raise ValueError(f"n_frames must be >= 2 and dt_s > 0; got {self.n_frames}, {self.dt_s}")
        if self.input_normalisation not in ("concentration", "signal_ratio"):
            raise ValueError(f"input_normalisation must be one of ('concentration', 'signal_ratio'); "
                             f"got {self.input_normalisation!r}")
        _check_outputs(self.outputs)
        n = len(self.outputs)
        if self.target_mean is None:
            object.__setattr__(self, "target_mean", (0.0,) * n)
        if self.target_std is None:
            object.__setattr__(self, "target_std", (1.0,) * n)
        if len(self.target_mean) != n or len(self.target_std) != n:
            raise ValueError(f"target_mean and target_std need one value per output {self.outputs}; got "
                             f"{self.target_mean} and {self.target_std}")
        if min(self.target_std) <= 0:
            raise ValueError(f"target_std must be positive; got {self.target_std}")

    def output_index(self, name: str) -> int | None:
        """Column of map ``name`` in the network's output, or None when the network does not predict it."""
        return self.outputs.index(name) if name in self.outputs else None

    def to_dict(self) -> dict:
        """Plain-type dict (lists for tuples) for checkpoints and JSON sidecars."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> STNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``; no ``outputs`` key: all three."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _conv1d(c_in: int, c_out: int, dilation: int = 1) -> nn.Conv1d:
    # kernel 3 with padding = dilation keeps the length T
    return nn.Conv1d(c_in, c_out, kernel_size=3, padding=dilation, dilation=dilation)


def _stack(layers: list[nn.Module]) -> nn.Sequential:
    out: list[nn.Module] = []
    for layer in layers:
        out += [layer, nn.ReLU(inplace=True)]
    return nn.Sequential(*out)


class STNet(nn.Module):
    """ST-Net: spatial 3-D encoder, temporal local/global pathways, fully connected head.

    ``forward(patches, reference)`` returns the standardised prediction (B, n_out), one
    column per map of ``config.outputs`` (n_out = 3 by default); use :meth:`decode` for
    physical units (CBV ml/100g, CBF ml/100g/min, Tmax s).
    """

    def __init__(self, config: STNetConfig) -> None:
        super().__init__()
        self.config = config
        ch = (1, *config.spatial_channels)
        spatial = [nn.Conv3d(ch[0], ch[1], kernel_size=(3, 3, 1), padding=(1, 1, 0))]
        spatial += [nn.Conv3d(a, b, kernel_size=(3, 3, 1)) for a, b in zip(ch[1:-1], ch[2:])]
        self.spatial = _stack(spatial)
        c, c_out = config.temporal_channels, config.pathway_out_channels
        self.merge = _stack([_conv1d(ch[-1] + 2, c)])
        self.local = _stack([_conv1d(c, c), _conv1d(c, c), _conv1d(c, c), _conv1d(c, c_out)])
        dil = config.global_dilations
        widths = [c] * (len(dil) - 1) + [c_out]
        self.wide = _stack([_conv1d(a, b, d) for a, b, d in zip([c, *widths[:-1]], widths, dil)])
        self.fuse = _stack([_conv1d(2 * c_out, c), _conv1d(c, c)])
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(c * config.n_frames, config.fc_hidden),
            nn.LeakyReLU(config.leaky_slope),
            nn.Dropout(config.dropout),
            nn.Linear(config.fc_hidden, len(config.outputs)),
        )
        self.register_buffer("target_mean", torch.tensor(config.target_mean), persistent=False)
        self.register_buffer("target_std", torch.tensor(config.target_std), persistent=False)

    def forward(self, patches: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Standardised outputs (those of ``config.outputs``: by default CBV, CBF, Tmax).

        Parameters
        ----------
        patches : Tensor, shape (B, 1, 7, 7, T)
            Normalised signal patches centred on the voxels (time last, as in NIfTI).
        reference : Tensor, shape (B, 2, T)
            Channel 0: the voxel's baseline signal repeated over time; channel 1: the
            arterial curve (the paper's order; ``docs/decisions/0056-reference-channel-order.md``).

        Returns
        -------
        Tensor, shape (B, n_out)
        """
        return self.head(self.features(patches, reference))  # (B, 64·T) -> (B, n_out)

    def features(self, patches: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The fused temporal features (B, 64·T) that the fully connected head reads (arguments as :meth:`forward`).

        Monte-Carlo dropout (``uncertainty.py``) computes them once and draws the head's dropout
        masks many times.
        """
        b, t = patches.shape[0], patches.shape[-1]
        x = self.spatial(patches)  # (B, 64, 1, 1, T)
        x = x.reshape(b, -1, t)  # (B, 64, T)
        x = torch.cat([x, reference.to(x.dtype)], dim=1)  # (B, 66, T): baseline channel, then arterial
        x = self.merge(x)  # (B, 64, T)
        x = torch.cat([self.local(x), self.wide(x)], dim=1)  # (B, 32 + 32, T)
        x = self.fuse(x)  # (B, 64, T)
        return x.flatten(1)

    def decode(self, standardised: torch.Tensor) -> torch.Tensor:
        """Standardised outputs (B, n_out) -> physical units (CBV ml/100g, CBF ml/100g/min, Tmax s)."""
        return standardised.float() * self.target_std + self.target_mean

    def encode(self, physical: torch.Tensor) -> torch.Tensor:
        """Physical targets (B, n_out), in ``config.outputs`` order -> standardised (inverse of :meth:`decode`)."""
        return (physical.float() - self.target_mean) / self.target_std
