"""Stage 1: the synthetic stroke cohort — DSC-MRI series with exactly known ground truth.

Modules, in the order a subject is built (parameter values: ``../shared/reference/simulation_recipe.md``):

- ``anatomy``       GM/WM/CSF fractions from nilearn's MNI152 2009 maps, random pose, thick-slice resampling
- ``vascular``      AIF (gamma variate + recirculation), VOF, residues, dispersion, Tmax truth, kernel tables
- ``haemodynamics`` healthy CBF/CBV (MTT = 60·CBV/CBF), residue shapes, delay, dispersion
- ``lesion``        MCA-territory severity field → hypoperfusion, core, delay/dispersion/rCBF/rCBV
- ``vessels``       AIF voxels (contralateral MCA), VOF voxels (superior sagittal sinus), large vessels
- ``realism``       switches and per-subject draws of the realism features (issue #16, decision 0040)
- ``synthesis``     tissue curves from the kernel tables, signal (eq. 1–2 forward), Rician noise (white or correlated)
- ``render``        fine time grid, slice timing, blood curves, the noise-free series of every voxel
- ``subject``       ``make_subject(config, rng) -> Subject``
- ``statistics``    the numbers checked against the recipe
- ``cohort``        a cohort profile's subjects, resumable atomic writing, ``data_manifest.csv``

The cohort notebook's figures and tables are :mod:`stnet_lib.experiments.cohort_plots`.
:data:`DEPARTURES` lists every deliberate departure from the recipe.
"""

from .cohort import CohortProfile, simulate_cohort
from .departures import DEPARTURES
from .realism import Realism
from .subject import Subject, SubjectConfig, make_subject

__all__ = ["CohortProfile", "simulate_cohort", "Subject", "SubjectConfig", "make_subject", "DEPARTURES", "Realism"]
