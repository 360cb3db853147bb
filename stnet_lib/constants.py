"""Physical constants of DSC-MRI perfusion, with units and sources.

Stage 0 of the pipeline: every number the equations of Cao et al. (eq. 1–8) use lives here once.
"""

__all__ = [
    "RHO_G_PER_ML",
    "HCT_LARGE_VESSEL",
    "HCT_SMALL_VESSEL",
    "K_H",
    "R2STAR_TISSUE_PER_MM_S",
    "ARTERIAL_QUADRATIC_A",
    "ARTERIAL_QUADRATIC_B",
    "REFERENCE_FIELD_T",
    "TMAX_THRESHOLD_S",
    "MAP_NAMES",
    "UNITS",
    "relaxivities",
]

#: Brain tissue density [g/ml] (Rempp et al. 1994, doi:10.1148/radiology.193.3.7972800).
RHO_G_PER_ML = 1.04
#: Haematocrit of large vessels, H_LV (dimensionless).
HCT_LARGE_VESSEL = 0.45
#: Haematocrit of small (capillary) vessels, H_SV (dimensionless).
HCT_SMALL_VESSEL = 0.25
#: Haematocrit correction k_H = (1 − H_LV)/(1 − H_SV) ≈ 0.733 (dimensionless).
K_H = (1.0 - HCT_LARGE_VESSEL) / (1.0 - HCT_SMALL_VESSEL)

#: Field strength at which the relaxivities below hold [T].
REFERENCE_FIELD_T = 1.5
#: Tissue transverse relaxivity r2* [s^-1 mM^-1] at 1.5 T: ΔR2*_tissue = r2*·C (Kjølby et al. 2006,
#: doi:10.1002/mrm.20937; the dsc-mri-toolbox default 0.044 ms^-1 mM^-1).
R2STAR_TISSUE_PER_MM_S = 44.0
#: Whole-blood quadratic relaxivity at 1.5 T: ΔR2*_blood = A·C + B·C² (Kjølby et al. 2006).
ARTERIAL_QUADRATIC_A = 7.6  # s^-1 mM^-1
ARTERIAL_QUADRATIC_B = 0.574  # s^-1 mM^-2

#: Clinical hypoperfusion threshold on Tmax [s] (Tmax > 6 s; the paper's ROC optimum is 6.484 s).
TMAX_THRESHOLD_S = 6.0

#: Map names, in the order every table and figure uses.
MAP_NAMES = ("cbv", "cbf", "mtt", "tmax")
#: Units of each map.
UNITS = {"cbv": "ml/100g", "cbf": "ml/100g/min", "mtt": "s", "tmax": "s"}


def relaxivities(field_t: float = REFERENCE_FIELD_T) -> dict[str, float]:
    """Relaxivities scaled linearly with the field strength.

    Parameters
    ----------
    field_t : float
        Main field strength [T], e.g. 1.5 or 3.0.

    Returns
    -------
    dict
        ``r2star_tissue`` [s^-1 mM^-1], ``arterial_a`` [s^-1 mM^-1], ``arterial_b`` [s^-1 mM^-2].

    Notes
    -----
    Susceptibility-induced ΔR2* grows roughly linearly with B0 (simulation_recipe.md §1.2: ≈ 87
    s^-1 mM^-1 in tissue at 3 T). Only TE·r2* enters the signal, so this is a calibration choice.
    """
    if not field_t > 0:
        raise ValueError(f"field_t must be a positive field strength in tesla; got {field_t!r}")
    scale = field_t / REFERENCE_FIELD_T
    return {
        "r2star_tissue": R2STAR_TISSUE_PER_MM_S * scale,
        "arterial_a": ARTERIAL_QUADRATIC_A * scale,
        "arterial_b": ARTERIAL_QUADRATIC_B * scale,
    }
