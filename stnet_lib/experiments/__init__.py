"""Stage 6 — the library side of the report notebooks: everything they show is computed here.

In the order ``make report`` runs them:

* ``context``      a notebook's parameters → profile, cohort, folders, methods (:func:`context`)
* ``data``         the cohort of a profile (simulated once, cached) or of any manifest
* ``predictions``  ST-Net training and every method's maps of the test subjects, cached in ``runs/<profile>``
* ``tables``       Tables 1 and 2 (both PSNR/SSIM conventions), the paper's values beside
* ``subjects``     one subject's maps, slice and curves (Fig. 2, ``explore``)
* ``ablations``    Fig. 3: short ST-Net trainings that change one setting (or the outputs), scored in the HP
* ``timing``       seconds per 10,000 voxels on this device, beside the paper's
* ``readme``       ``reports/<profile>/README.md``

Studies and report helpers imported by name (not re-exported here): ``cohort_plots`` (the cohort
notebook's figures and tables), ``evaluation_tables`` (the evaluation's Markdown/CSV tables),
``noise_study`` (the baselines under noise), ``ttv_tuning`` (TTV's phantom, per-method errors, the
weight search), ``validation`` (OSIPI's DRO and a real slice).
"""

from .ablations import ablation_runs, ablation_summary, output_comparison, score_ablations, train_ablations
from .context import Context, context
from .data import cohort_manifest, held_out_subjects, subject_scan
from .predictions import (available, pred_dir, pred_dirs, predict_subjects, stnet_checkpoint, time_grid,
                          train_stnet, training_record, training_summary, runs_summary)
from .readme import write_readme
from .subjects import (Exploration, as_perfusion_maps, explore, explore_scan, hp_slice, load_maps, method_maps, pick_subject,
                       reference_maps, scan_curves, worst_voxel)
from .tables import METHOD_LABELS, evaluate_cached, table1, table1_tests, table2, table2_beside_paper
from .timing import device_name, time_methods

__all__ = [
    "Context", "Exploration", "METHOD_LABELS", "as_perfusion_maps", "context", "explore", "explore_scan", "training_summary", "runs_summary", "ablation_runs", "ablation_summary", "available", "cohort_manifest", "device_name",
    "evaluate_cached", "hp_slice", "load_maps", "method_maps", "output_comparison", "pick_subject", "pred_dir",
    "pred_dirs", "predict_subjects", "reference_maps", "scan_curves", "score_ablations", "stnet_checkpoint",
    "subject_scan", "table1", "table1_tests", "table2", "table2_beside_paper", "held_out_subjects", "time_grid",
    "time_methods", "train_ablations", "train_stnet", "training_record", "worst_voxel", "write_readme",
]
