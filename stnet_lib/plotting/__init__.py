"""Figures; every function returns a matplotlib Figure and never saves it.

Every figure is labelled for a paper: axis labels and colour bars name the quantity and its unit
in brackets, written as SI writes it (:func:`map_label`, :data:`METRIC_LABELS`; never upper-cased),
and the figure has a title. A function's default ``title`` says what is shown; the notebooks pass
one that also says on which data.
"""

from .maps import (plot_curves, plot_hypoperfusion, plot_map_grid, plot_method_comparison, plot_residual_grid,
                   plot_voxel_explorer)
from .results import (plot_ablation, plot_learning_curve, plot_metric_boxes, plot_noise_study, plot_osipi,
                      plot_output_ablation, plot_segmentation_boxes, plot_timing, plot_tmax_by_delay)
from ._style import (AXIS_LABELS, DISPLAY_RANGES, MAP_LABELS, METHOD_COLOURS, METRIC_LABELS, REGION_LABELS,
                     map_label)

__all__ = ["plot_map_grid", "plot_curves", "DISPLAY_RANGES", "METHOD_COLOURS", "MAP_LABELS", "METRIC_LABELS",
           "REGION_LABELS", "AXIS_LABELS", "map_label", "plot_residual_grid", "plot_hypoperfusion",
           "plot_metric_boxes", "plot_segmentation_boxes", "plot_learning_curve", "plot_ablation",
           "plot_output_ablation", "plot_timing", "plot_method_comparison", "plot_voxel_explorer",
           "plot_noise_study", "plot_osipi", "plot_tmax_by_delay"]
