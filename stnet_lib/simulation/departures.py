"""Deliberate departures of the simulator from ``simulation_recipe.md`` (shown by the cohort notebook).

The realism features of issue #16 (:mod:`.realism`; docs/decisions/0040-realistic-synthetic-cohort.md)
are listed here too, each with its source and whether it can be switched off.
"""

__all__ = ["DEPARTURES"]

#: (recipe section, what the recipe says, what the simulator does and why).
DEPARTURES = (
    ("§3.1 residues", "mix exponential 50 %, gamma λ 2–10 30 %, box/linear 20 %",
     "exponential 50 %, gamma λ ∈ {2, 3.5, 5} 30 %, linear 20 %, no box: with any dispersion h ⊗ box peaks at "
     "t = MTT, so healthy voxels would cross Tmax 6 s; λ > 5 behaves the same way. Shapes come in smooth patches "
     "(quantiles of a smooth field), not voxel by voxel."),
    ("§4.2 lesion delay", "δ 3–8 s (penumbra), 4–12 s (core), drawn",
     "δ = Tmax_target − argmax(h ⊗ R), never below the healthy delay, with Tmax_target 6 s at the "
     "hypoperfusion border, 10 s at the HIR level and 14–24 s at the epicentre: the Tmax > 6 s volume then "
     "equals its target; the resulting δ is stored (delay.nii.gz)."),
    ("§4.2, §7 core", "core from ADC; 10–20 % of subjects with core partly outside Tmax > 6 s",
     "core = rCBF < 0.3 of the voxel's own healthy CBF (the CT-perfusion convention; no diffusion is "
     "simulated), so the core always lies inside Tmax > 6 s; multi-focal lesions come from a second "
     "epicentre (15 %)."),
    ("§7 territory", "AAL-label MCA territory or parametric wedge",
     "the parametric wedge (option 2) with soft borders, in MNI coordinates."),
    ("§7 volumes", "Tmax > 6 s median ≈ 95 ml, core median 25–30 ml (whole brain)",
     "targets scaled by slab thickness / 100 mm for profiles thinner than the paper's (smoke ×0.4, quick ×0.8), "
     "and capped at 80 % of the territory inside the slab."),
    ("§6 anatomy", "scale 0.9–1.1",
     "kept, but the MNI152 brain (GM + WM ≈ 1.68 l) is larger than an average brain, so lesions are "
     "relatively smaller than in patients."),
    ("§6, §1 signal", "single-compartment voxel (CBF = Σ p_i CBF_i)",
     "CSF is its own compartment (realism csf_compartment): S = S0_tissue·exp(−TE·r2*·C/(p_GM + p_WM)) + S0_CSF, "
     "the CSF bright at baseline (1.3–1.6× GM, §1.4) and without bolus; off: S0·exp(−TE·r2*·C_voxel). AIF/VOF "
     "voxels are two-compartment magnitude sums f·blood + (1 − f)·tissue."),
    ("§2.2 recirculation", "t_d 6–12 s, K 10–25 %, τ 5–20 s; optionally a steady-state tail of 5–10 % of the peak",
     "realism aif_plateau: a steady-state plateau of 6–16 % of the first-pass peak in concentration (Parker et al. 2006 "
     "population AIF: ≈ 15 %, sigmoid rise, decay 0.1685/min), measuring 8–20 % in −ln(S/S0) of the AIF voxels (real "
     "slice 9 %); the second pass peaks 10–25 s after the first (real slice ≈ 20 s) with 25–45 % of its area "
     "(Parker: 41 %), τ 2–6 s. Off: the recipe's ranges."),
    ("§1.3 steady state", "T1 effects neglected",
     "realism non_steady_frames: 0–3 first frames at 1.1–1.3× S0, each ≥ 6 % above the next (T1 saturation before "
     "the longitudinal steady state; real slice: one frame at 1.24×)."),
    ("§1.3 slice timing", "— (every slice at the frame time)",
     "realism slice_timing: interleaved 2-D EPI, slice z sampled at k·TR + t_z (t_z = its rank × TR/n_slices, the "
     "fine step a multiple of the slice count so t_z is exact), written as SliceTiming in dsc.json. The truth's Tmax "
     "is relative to the arterial input C_a (the AIF as reference), whatever the slice; c_tissue is at k·TR."),
    ("§4.4, §6 large vessels", "AIF and VOF voxels only",
     "realism large_vessels: arteries (MCA, ACA, PCA) and veins (sinuses, deep veins) as tubes around MNI polylines, "
     "plus a pial network on the cortical surface (common zero set of two smooth random fields); blood fraction f ≥ 0.05 "
     "per voxel, signal f·blood + (1 − f)·tissue·exp(−TE·r2*·f·C_blood) (intravascular plus extravascular dephasing), "
     "arterial or venous curve; CBV 99th/50th percentile 5–10 (real slice 8.1). Flagged in vessel_mask (1 artery, 2 vein), "
     "outside brain_mask: truth NaN there, metrics exclude them (a large vessel has no tissue CBF, MTT or Tmax)."),
    ("§4.1, §6 older brains", "healthy adult values and anatomy",
     "realism older_brains: half of the subjects are older, with atrophy (5–25 % of GM/WM turned into CSF, patchy), "
     "white-matter disease in 2–20 % of the white matter (pure-WM CBF 10–15 ml/100g/min, CBV ×0.7–0.9, arrival 0.5–2 s "
     "later, Tmax kept ≤ 5 s; wmh_mask) and a bolus up to twice as wide (AIF β ×1–2, low cardiac output)."),
    ("§1.2 relaxivity", "r2* 44 (1.5 T), ≈ 87 (3 T); table of GM drops computed with 44 at both TEs",
     "all relaxivities scale linearly with B0 (stnet_lib.constants.relaxivities, also used by the inverse), "
     "so 3 T subjects drop deeper (GM up to ≈ 60 %)."),
    ("§5 noise", "independent complex Gaussian noise, σ varying with the coil field; optional drift and spikes",
     "uniform σ = median brain S0 / SNR; no drift, no spikes; S0 carries the coil field. realism correlated_noise: "
     "each channel smoothed in-plane by a 3-tap kernel, adjacent-voxel correlation 0.3–0.5 per axis (≈ 0.05 two apart; "
     "real slice 0.34 and 0.43, ≈ 0), then Rician magnitude."),
    ("§1.3, §9 TE", "TE 20–35 ms at 3 T, 40–50 ms at 1.5 T",
     "3 T from 25 ms (issue #16: TE 25–50 ms); relaxivities scale with the field (constants.relaxivities)."),
    ("§1.3 timing", "t0 8–20 s, 6–15 baseline frames",
     "t0 ~ U[max(8 s, 6·TR), 20 s], which guarantees ≥ 6 baseline frames."),
    ("§9 time step", "0.05 s (0.01–0.1)",
     "TR / ceil(TR / 0.1 s) ≈ 0.095–0.1 s so that frames fall on the fine grid (with slice timing the steps per TR are "
     "a multiple of the slice count); kernels tabulated on MTT nodes "
     "4 % apart (linear blending keeps ∫C_t exact) and 19 dispersion nodes; delays rounded to the fine step "
     "(the truth uses the rounded delay)."),
    ("storage", "—",
     "noisy series stored as int16 (rounded magnitude, as scanners write them); noise-free ones as float32. "
     "The brain mask is GM + WM ≥ 0.25 without the vessel voxels (AIF, VOF and large vessels): truth maps are NaN in "
     "CSF, vessels and outside."),
    ("split", "52 labelled train/val",
     "42 train / 10 val (the paper does not give the ratio); the 20 no-lesion subjects are unlabelled test subjects."),
)
