"""Deliberate departures of the simulator from ``simulation_recipe.md`` (shown by the cohort notebook)."""

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
     "tissue voxels, CSF partial volume included, follow S0·exp(−TE·r2*·C_voxel); AIF/VOF voxels are "
     "two-compartment magnitude sums f·blood + (1 − f)·tissue."),
    ("§1.2 relaxivity", "r2* 44 (1.5 T), ≈ 87 (3 T); table of GM drops computed with 44 at both TEs",
     "all relaxivities scale linearly with B0 (stnet_lib.constants.relaxivities, also used by the inverse), "
     "so 3 T subjects drop deeper (GM up to ≈ 60 %)."),
    ("§5 noise", "σ varying with the coil field; optional drift and spikes",
     "uniform σ = median brain S0 / SNR; no drift, no spikes; S0 carries the coil field."),
    ("§1.3 timing", "t0 8–20 s, 6–15 baseline frames",
     "t0 ~ U[max(8 s, 6·TR), 20 s], which guarantees ≥ 6 baseline frames."),
    ("§9 time step", "0.05 s (0.01–0.1)",
     "TR / ceil(TR / 0.1 s) ≈ 0.095–0.1 s so that frames fall on the fine grid; kernels tabulated on MTT nodes "
     "4 % apart (linear blending keeps ∫C_t exact) and 19 dispersion nodes; delays rounded to the fine step "
     "(the truth uses the rounded delay)."),
    ("storage", "—",
     "noisy series stored as int16 (rounded magnitude, as scanners write them); noise-free ones as float32. "
     "The brain mask is GM + WM ≥ 0.25 without the vessel voxels: truth maps are NaN in CSF and outside."),
    ("split", "52 labelled train/val",
     "42 train / 10 val (the paper does not give the ratio); the 20 no-lesion subjects are unlabelled test subjects."),
)
