"""Stage 1 (synthetic data): arterial input, venous output, residue functions, delay and dispersion.

Every curve here is a concentration in mM on a fine time grid of step ``dt_s`` (simulation_recipe.md
§2–3). The forward model of a tissue voxel is (recipe §3.2)

    C_t(t) = (ρ/k_H) · CBF · [C_a ⊗ h ⊗ R](t − δ),

with R the residue (R(0) = 1, ∫R = MTT), h the exponential dispersion kernel of mean ``dispersion_s``
and δ the arrival delay. Its ground-truth Tmax is δ + argmax (h ⊗ R) (recipe §3.3).

Discretisation: the residue and the combined kernel h ⊗ R are sampled at cell midpoints
(t = (j + ½)·dt), h is integrated over cells centred on the grid points, and C_a is sampled at
t − ½·dt, so that the Riemann sum of the convolution is second-order accurate and ∫C_t equals
(ρ/k_H)·CBF·MTT·∫C_a to O(dt²).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft
from scipy import special

__all__ = [
    "RESIDUE_SHAPES",
    "MTT_NODES_S",
    "DISPERSION_NODES_S",
    "gamma_variate",
    "arterial_input",
    "recirculation_delay_s",
    "venous_output",
    "residue",
    "dispersion_cell_masses",
    "tmax_exponential_closed_form",
    "residue_peak_time_s",
    "kernel_table",
]

#: Residue shapes, indexed by the per-voxel integer ``residue_shape``: exponential, gamma
#: transit-time distributions with λ = 2, 3.5, 5 (Mouridsen 2006), and linear (Kudo 2013).
#: The box (plug-flow) shape of the recipe is left out: with any dispersion its h ⊗ R peaks at
#: t = MTT, so healthy voxels would cross Tmax 6 s (see the cohort notebook's departures list).
RESIDUE_SHAPES = ("exponential", "gamma2", "gamma3.5", "gamma5", "linear")
_GAMMA_LAMBDA = {"exponential": 1.0, "gamma2": 2.0, "gamma3.5": 3.5, "gamma5": 5.0}
#: MTT nodes [s] of the kernel tables (geometric, 4 % apart); voxel MTTs are interpolated
#: linearly between nodes, which keeps ∫R = MTT exact.
MTT_NODES_S = np.geomspace(1.0, 100.0, 118)
#: Dispersion nodes [s] (mean 1/β_d of the exponential kernel); 0 means no dispersion.
DISPERSION_NODES_S = np.array(
    [0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]
)


def gamma_variate(time_s: NDArray, t0_s: float, alpha: float, beta_s: float) -> NDArray:
    """Unit-amplitude gamma variate (t − t0)^α·exp(−(t − t0)/β), zero before ``t0_s``.

    Parameters
    ----------
    time_s : ndarray, shape (t,)
        Times [s].
    t0_s, alpha, beta_s : float
        Arrival [s], shape (dimensionless) and scale [s]; the peak is α·β after t0.
    """
    lag = np.clip(np.asarray(time_s, dtype=np.float64) - t0_s, 0.0, None)
    return lag**alpha * np.exp(-lag / beta_s)


def arterial_input(time_s: NDArray, *, t0_s: float, alpha: float, beta_s: float, peak_mM: float,
                   recirc_delay_s: float, recirc_fraction: float, recirc_tau_s: float, plateau_fraction: float = 0.0,
                   plateau_centre_s: float = 0.0, plateau_width_s: float = 2.0, plateau_decay_per_s: float = 0.0) -> NDArray:
    """Arterial concentration C_a(t) [mM]: gamma-variate first pass, recirculation, steady-state plateau.

    Parameters
    ----------
    time_s : ndarray, shape (t,)
        Uniformly spaced times [s], starting at or before ``t0_s``.
    t0_s, alpha, beta_s : float
        First-pass gamma variate (recipe §2.1).
    peak_mM : float
        Maximum of the whole curve [mM].
    recirc_delay_s, recirc_fraction, recirc_tau_s : float
        Recirculation K·[GV(t − t_d) ⊗ e^(−t/τ)/τ] (dsc-mri-toolbox form, recipe §2.2); with the
        unit-area kernel its area is ``recirc_fraction`` times the first pass's.
    plateau_fraction, plateau_centre_s, plateau_width_s, plateau_decay_per_s : float
        Steady state P·GV_peak·e^(−k(t − t_c))/(1 + e^(−(t − t_c)/w)), the late term of Parker's
        population AIF (Parker et al. 2006; decision 0040): a level P times the first pass's peak,
        reached around t_c [s] within w [s], decaying at k [1/s]. P = 0 (default): none.

    Returns
    -------
    ndarray, shape (t,)
        C_a(t) [mM].
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    dt_s = time_s[1] - time_s[0]
    first = gamma_variate(time_s, t0_s, alpha, beta_s)
    delayed = gamma_variate(time_s, t0_s + recirc_delay_s, alpha, beta_s)
    kernel = np.exp(-(np.arange(time_s.size) + 0.5) * dt_s / recirc_tau_s) * dt_s / recirc_tau_s
    recirc = _causal_convolve(delayed, kernel)
    curve = first + recirc_fraction * recirc
    if plateau_fraction > 0:
        lag = time_s - plateau_centre_s
        sigmoid = 0.5 * (1.0 + np.tanh(0.5 * lag / plateau_width_s))  # 1/(1 + e^(−lag/w)) without overflow
        curve = curve + plateau_fraction * first.max() * np.exp(-plateau_decay_per_s * lag) * sigmoid
    return peak_mM * curve / curve.max()


def recirculation_delay_s(second_pass_delay_s: float, alpha: float, beta_s: float, tau_s: float, *, dt_s: float = 0.01) -> float:
    """Shift t_d of the recirculation GV(t − t_d) ⊗ e^(−t/τ)/τ whose peak comes ``second_pass_delay_s`` after the GV's.

    The exponential kernel moves the gamma variate's peak (at α·β) later by Δ; t_d = delay − Δ.
    """
    time_s = np.arange(0.0, alpha * beta_s * 6 + 10 * tau_s, dt_s)
    first = gamma_variate(time_s, 0.0, alpha, beta_s)
    kernel = np.exp(-(np.arange(time_s.size) + 0.5) * dt_s / tau_s)
    shift = time_s[int(np.argmax(_causal_convolve(first, kernel)))] - time_s[int(np.argmax(first))]
    return float(second_pass_delay_s - shift)


def venous_output(c_aif_half: NDArray, dt_s: float, *, transit_s: float, shape: float = 4.0) -> NDArray:
    """Venous concentration C_v = C_a ⊗ g [mM], g a unit-area gamma transit kernel (Kudo's VOF idea).

    Parameters
    ----------
    c_aif_half : ndarray, shape (t,)
        C_a sampled at (i − ½)·dt [mM], as :func:`kernel_table` expects.
    dt_s : float
        Fine time step [s].
    transit_s : float
        Mean arterio-venous transit time [s].
    shape : float
        Gamma shape of the transit distribution.

    Returns
    -------
    ndarray, shape (t,)
        C_v on the grid points i·dt [mM]; ∫C_v = ∫C_a over an infinite window (k_AV = 1 for
        perfect measurements, eq. 8).
    """
    mid = (np.arange(c_aif_half.size) + 0.5) * dt_s
    g = special.gammainc(shape, (mid + 0.5 * dt_s) * shape / transit_s) - special.gammainc(
        shape, np.maximum(mid - 0.5 * dt_s, 0.0) * shape / transit_s)
    return _causal_convolve(c_aif_half, g)


def residue(shape: str, time_s: NDArray, mtt_s: NDArray | float) -> NDArray:
    """Residue function R(t) with R(0) = 1 and ∫R dt = MTT (recipe §3.1).

    Parameters
    ----------
    shape : str
        One of :data:`RESIDUE_SHAPES`.
    time_s : ndarray
        Times [s] (broadcast against ``mtt_s``).
    mtt_s : float or ndarray
        Mean transit time [s].
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    mtt_s = np.asarray(mtt_s, dtype=np.float64)
    if shape == "linear":
        return np.clip(1.0 - time_s / (2.0 * mtt_s), 0.0, 1.0)
    if shape not in _GAMMA_LAMBDA:
        raise ValueError(f"shape must be one of {RESIDUE_SHAPES}; got {shape!r}")
    lam = _GAMMA_LAMBDA[shape]
    return special.gammaincc(lam, lam * np.clip(time_s, 0.0, None) / mtt_s)


def dispersion_cell_masses(n: int, dt_s: float, dispersion_s: float) -> NDArray:
    """Mass of the exponential dispersion kernel h(t) = e^(−t/τ)/τ in cells centred on j·dt.

    Cell 0 is [0, ½dt], cell j ≥ 1 is [(j − ½)dt, (j + ½)dt]; the masses sum to 1 (up to the
    truncation at ``n``). ``dispersion_s`` = 0 gives a unit impulse.
    """
    masses = np.zeros(n)
    if dispersion_s <= 0:
        masses[0] = 1.0
        return masses
    edges = np.concatenate([[0.0], (np.arange(n) + 0.5) * dt_s])
    cdf = -np.expm1(-edges / dispersion_s)
    return np.diff(cdf)


def tmax_exponential_closed_form(mtt_s, dispersion_s):
    """argmax of h ⊗ R for an exponential residue and exponential dispersion [s] (recipe §3.3).

    t* = ln(β/k)/(β − k) with k = 1/MTT and β = 1/τ (τ = ``dispersion_s``); t* = 0 without
    dispersion, and its limit MTT when β = k.
    """
    mtt_s, dispersion_s = np.broadcast_arrays(np.asarray(mtt_s, float), np.asarray(dispersion_s, float))
    k = 1.0 / mtt_s
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = 1.0 / dispersion_s
        t_star = np.log(beta / k) / (beta - k)
    t_star = np.where(np.isclose(beta, k), mtt_s, t_star)
    return np.where(dispersion_s > 0, t_star, 0.0)


@functools.lru_cache(maxsize=2)
def _peak_time_table(dt_s: float = 0.05, length_s: float = 160.0) -> NDArray:
    """Peak time of h ⊗ R [s] for every (shape, MTT node, dispersion node), parabola-refined."""
    n = int(round(length_s / dt_s))
    mid = (np.arange(n) + 0.5) * dt_s
    table = np.zeros((len(RESIDUE_SHAPES), MTT_NODES_S.size, DISPERSION_NODES_S.size))
    h_hat = np.stack([sfft.rfft(dispersion_cell_masses(n, dt_s, tau), 2 * n) for tau in DISPERSION_NODES_S])
    for s, shape in enumerate(RESIDUE_SHAPES):
        r_hat = sfft.rfft(residue(shape, mid[None, :], MTT_NODES_S[:, None]), 2 * n, axis=-1)
        curves = sfft.irfft(r_hat[:, None, :] * h_hat[None, 1:, :], 2 * n, axis=-1)[..., :n]
        j = np.clip(np.argmax(curves, axis=-1), 1, n - 2)
        y0, y1, y2 = (np.take_along_axis(curves, (j + o)[..., None], -1)[..., 0] for o in (-1, 0, 1))
        shift = 0.5 * (y0 - y2) / np.where(y0 - 2 * y1 + y2 < 0, y0 - 2 * y1 + y2, -np.inf)
        table[s, :, 1:] = (j + 0.5 + shift) * dt_s
    return table


def residue_peak_time_s(shape_index: NDArray, mtt_s: NDArray, dispersion_s: NDArray) -> NDArray:
    """argmax_t (h ⊗ R)(t) [s] per voxel, interpolated in a cached fine-grid table.

    Parameters
    ----------
    shape_index : ndarray of int
        Index into :data:`RESIDUE_SHAPES`.
    mtt_s, dispersion_s : ndarray
        MTT and dispersion mean [s], same shape as ``shape_index``; within the node ranges.

    Returns
    -------
    ndarray
        Peak time [s]; Tmax = delay + this (recipe §3.3). Exactly 0 without dispersion.

    Notes
    -----
    The table holds the argmax of h ⊗ R on a 0.05 s grid refined by a parabola through the top
    three samples; values between nodes are bilinear in (MTT, dispersion).
    """
    table = _peak_time_table()
    m0, wm = node_weights(MTT_NODES_S, mtt_s)
    d0, wd = node_weights(DISPERSION_NODES_S, dispersion_s)
    out = np.zeros(np.shape(mtt_s))
    for dm, fm in ((0, 1 - wm), (1, wm)):
        for dd, fd in ((0, 1 - wd), (1, wd)):
            out += fm * fd * table[shape_index, m0 + dm, d0 + dd]
    return out


def node_weights(nodes: NDArray, values: NDArray) -> tuple[NDArray, NDArray]:
    """Lower node index and linear weight of the upper node for ``values`` inside ``nodes``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size and (values.min() < nodes[0] - 1e-9 or values.max() > nodes[-1] + 1e-9):
        raise ValueError(f"values must lie in [{nodes[0]}, {nodes[-1]}]; got [{values.min()}, {values.max()}]")
    lower = np.clip(np.searchsorted(nodes, values, side="right") - 1, 0, nodes.size - 2)
    weight = (values - nodes[lower]) / (nodes[lower + 1] - nodes[lower])
    return lower, np.clip(weight, 0.0, 1.0)


def kernel_table(c_aif_half: NDArray, dt_s: float, mtt_nodes: NDArray, *, dtype=np.float32) -> NDArray:
    """Tissue curves per unit flow, (C_a ⊗ h ⊗ R)(t), for every shape × MTT node × dispersion node.

    Parameters
    ----------
    c_aif_half : ndarray, shape (n,)
        C_a at (i − ½)·dt [mM], i = 0..n−1 (zero before the bolus).
    dt_s : float
        Fine step [s].
    mtt_nodes : ndarray, shape (m,)
        A contiguous run of :data:`MTT_NODES_S`.

    Returns
    -------
    ndarray, shape (n_shapes, m, n_dispersion, n)
        ∫ C_a(t − u)(h ⊗ R)(u) du on the grid points i·dt [mM·s]; multiply by (ρ/k_H)·CBF
        [ml/g/s] to get C_t.
    """
    n = c_aif_half.size
    nfft = sfft.next_fast_len(3 * n)
    mid = (np.arange(n) + 0.5) * dt_s
    a_hat = sfft.rfft(c_aif_half * dt_s, nfft)
    ah_hat = np.stack([a_hat * sfft.rfft(dispersion_cell_masses(n, dt_s, tau), nfft) for tau in DISPERSION_NODES_S])
    table = np.empty((len(RESIDUE_SHAPES), mtt_nodes.size, DISPERSION_NODES_S.size, n), dtype=dtype)
    for s, shape in enumerate(RESIDUE_SHAPES):
        r_hat = sfft.rfft(residue(shape, mid[None, :], mtt_nodes[:, None]), nfft, axis=-1)
        for m in range(mtt_nodes.size):
            table[s, m] = sfft.irfft(r_hat[m][None, :] * ah_hat, nfft, axis=-1)[:, :n]
    return table


def _causal_convolve(a: NDArray, b: NDArray) -> NDArray:
    """First ``len(a)`` samples of the linear convolution Σ_j a[i − j]·b[j]."""
    n = a.size
    nfft = sfft.next_fast_len(2 * n)
    return sfft.irfft(sfft.rfft(a, nfft) * sfft.rfft(b, nfft), nfft)[:n]
