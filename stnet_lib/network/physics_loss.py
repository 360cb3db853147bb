"""Stage 3b — the physics-informed loss of ST-Net (eq. 9 of Cao et al.).

    Loss = L1(ŷ, y) + w · L1(∫C_t dt, CBV̂ · ∫C_a dt · ρ / (100 · k_H · k_AV))

* ``ŷ, y``: the standardised predictions and references (CBV, CBF, Tmax, or the subset
  the network regresses, ``STNetConfig.outputs``), mean over batch and maps (dimensionless).
* ``∫C_t dt``: the tissue concentration integral of the patch's **centre voxel**, from its own
  signal through eq. 1–2 with its own baseline: C_t(t) = −ln(S(t)/S0) / (TE·r2*) [mM], trapezoid
  rule with the frame interval [s] → [mM·s]. It depends on no weight, so it is computed once
  per voxel with ``stnet_lib.signal`` (``inputs.prepare_inputs``) and gathered per batch.
* the second argument is eq. 4 solved for ∫C_t with the predicted CBV [ml/100g] and the
  subject's arterial concentration integral [mM·s]; the physics term is in mM·s, averaged over
  **every** sample of the batch.

Departures from the authors' code (``reference/anchors_software.md`` §1.3), all bugs fixed:
their integral loops indexed the batch axis with the time index (only the first T samples
of a batch contributed); their AIF was divided by the *tissue* voxel's baseline; their
predicted CBV was de-normalised by ×5 instead of the target scale; and they multiplied by ρ
and k_H instead of dividing (eq. 4). They integrated in frame units (Δt = 1); we use seconds.
The haematocrit factor divides as in eq. 4 and the textbook, where the physics term as printed
and their code multiply by it: their implied ∫C_t is k_H² ≈ 0.54 times ours
(``docs/decisions/0026-physics-loss-as-written.md``).

Choosing w: the per-sample slope of the physics term with respect to the standardised CBV
output is w·std_CBV·∫C_a·ρ/(100·k_H·k_AV) ≈ w·1 (about 1 mM·s per standard deviation
of CBV for a typical AIF), against 1/3 for the supervised term (mean over 3 maps). For
w ≳ 1/3 the L1 minimiser per voxel is the noisy single-voxel eq.-4 estimate instead of the
reference; w = 0.1 keeps the physics term a regulariser. w = 0 turns it off (ablation).

Networks with fewer outputs (the "one output against three" ablation of Fig. 3): the
supervised term stays the mean over the network's own maps, so with one output it is that
map's L1 (per map three times the weight it has in the mean over three; Adam's step size does
not depend on the loss scale, and for a CBV-only network the physics term weighs 3× less
beside it). Decision: a network **without a CBV output has no physics term** — eq. 9's
second term is a constraint on the predicted CBV, and there is nothing for it to constrain —
so such a network is trained on the supervised term alone: ``cbv_ml_100g=None`` with
``weight=0`` (any other weight is refused, here and in ``train.fit``, rather than dropped
silently), and the reported physics term is 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["LossParts", "implied_tissue_integral", "stnet_loss"]


class LossParts(NamedTuple):
    """Total loss and its two terms (each a 0-d tensor)."""

    total: torch.Tensor
    supervised: torch.Tensor
    physics: torch.Tensor


def implied_tissue_integral(cbv_ml_100g: torch.Tensor, aif_integral_mM_s: torch.Tensor, *,
                            k_av: torch.Tensor | float, kh: float, rho: float) -> torch.Tensor:
    """Eq. 4 solved for ∫C_t [mM·s]: CBV·∫C_a·ρ / (100·k_H·k_AV), CBV in ml/100g."""
    return cbv_ml_100g * aif_integral_mM_s * rho / (100.0 * kh * k_av)


def stnet_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    *,
    cbv_ml_100g: torch.Tensor | None,
    tissue_integral_mM_s: torch.Tensor,
    aif_integral_mM_s: torch.Tensor,
    weight: float,
    k_av: torch.Tensor | float,
    kh: float,
    rho: float,
) -> LossParts:
    """Eq. 9 for a batch.

    Parameters
    ----------
    predicted, target : Tensor, shape (B, n_out)
        Standardised outputs (CBV, CBF, Tmax by default; ``STNetConfig.outputs``).
    cbv_ml_100g : Tensor, shape (B,), or None
        Predicted CBV in physical units (the CBV column of ``STNet.decode(predicted)``); None
        for a network without a CBV output, which has no physics term (``weight`` must be 0).
    tissue_integral_mM_s : Tensor, shape (B,)
        ∫C_t dt from each voxel's own signal (``NetworkInputs.tissue_integral_mM_s``).
    aif_integral_mM_s : Tensor, shape (B,)
        ∫C_a dt of each sample's subject.
    weight : float
        w of eq. 9 (0 turns the physics term off).
    k_av : Tensor, shape (B,), or float
        Each sample's subject's partial-volume factor (eq. 8).
    kh, rho : float
        Constants of eq. 4.

    Raises
    ------
    ValueError
        ``cbv_ml_100g`` is None and ``weight`` is not 0.
    """
    supervised = (predicted.float() - target.float()).abs().mean()
    if cbv_ml_100g is None:
        if weight != 0:
            raise ValueError(f"weight must be 0 for a network without a CBV output (eq. 9's physics term needs "
                             f"the predicted CBV); got {weight}")
        return LossParts(supervised, supervised, torch.zeros_like(supervised))
    implied = implied_tissue_integral(cbv_ml_100g.float(), aif_integral_mM_s.float(), k_av=k_av, kh=kh, rho=rho)
    physics = (tissue_integral_mM_s.float() - implied).abs().mean()
    return LossParts(supervised + weight * physics, supervised, physics)
