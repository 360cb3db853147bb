"""One switch that sizes every step of the reports: ``smoke``, ``quick`` and ``paper``.

A :class:`Profile` composes the synthetic cohort (a :class:`~stnet_lib.simulation.cohort.CohortProfile`),
the ST-Net training settings (:data:`TRAIN_PROFILES`, also ``stnet train --profile``'s) and the evaluation,
ablation (Fig. 3) and timing settings of the notebooks. :data:`PROFILES` is the one table of profiles:
``stnet simulate``, ``stnet train``, ``stnet report`` and the notebooks read it, so that they always agree.
(The simulation package takes a cohort profile as an argument and imports nothing from here: an
algorithm package imports nothing above it.)

=========  =========================  =====================================================
profile    where                      purpose
=========  =========================  =====================================================
smoke      CI (``make test``)         every notebook runs end to end in about three minutes
quick      a 2-core laptop CPU        ``make report``: the paper's numbers of subjects, ≤ 25 min
paper      one GPU                    the paper's cohort size, split and hyper-parameters
=========  =========================  =====================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ._validation import StnetInputError, check_in_allowed
from .evaluation import EvaluationConfig
from .network.stnet import TARGET_NAMES
from .network.train import TrainConfig
from .simulation.cohort import CohortProfile

__all__ = ["TRAIN_PROFILES", "BASELINES", "TABLE_METHODS", "OUTPUT_CHOICES", "AblationPlan", "NoiseStudyPlan", "Profile",
           "PROFILES", "get_profile"]

#: Training settings per profile: ``paper`` the paper's (Adam 1e-4 constant, batch 512, ≤ 400 epochs,
#: patience 50, stride 3, ratio 2); ``quick`` lr 1e-3 with a cosine decay to 1e-5 and two time-shift
#: augmentations, for a 2-core CPU (docs/decisions/0023-quick-training-profile.md), and on the
#: paper-size cohort batches of 128, a boundary sampling group and Tmax scaled by healthy tissue
#: (docs/decisions/0072-boundary-sampling-and-tmax-scale.md); ``smoke`` only checks that everything runs.
TRAIN_PROFILES = {
    "smoke": TrainConfig(epochs=2, patience=2, lr=1e-3, batch_size=128, stride=3, ratio=2.0, eval_batch_size=1024),
    "quick": TrainConfig(epochs=40, patience=12, lr=1e-3, lr_schedule="cosine", lr_min=1e-5, batch_size=128,
                         stride=3, ratio=2.0, time_shift_frames=3, aif_shift_frames=2, boundary_fraction=0.25,
                         tmax_scale="healthy"),
    "paper": TrainConfig(),
}

#: Classical baselines run over every test subject, in table order (Fang's TTV included).
BASELINES = ("ssvd", "csvd", "osvd", "ttv")
#: Methods of the paper's tables: ST-Net, Fang's TTV, and oSVD as the clinical standard.
TABLE_METHODS = ("stnet", "ttv", "osvd")
#: Points of the outputs ablation: the three-output network, and one single-output network per map.
OUTPUT_CHOICES = ("all", *TARGET_NAMES)


@dataclass(frozen=True)
class AblationPlan:
    """The ablations of Fig. 3: every run changes one setting of the profile's training.

    Attributes
    ----------
    strides : tuple of int
        In-plane grid steps of the hypoperfused training voxels.
    ratios : tuple of float
        Normal : hypoperfused sample ratios.
    learning_rates : tuple of float
        Adam learning rates.
    physics_weights : tuple of float
        w of eq. 9 (0 = no physics loss).
    outputs : tuple of str
        The paper's ablation of one output against three: ``"all"`` is the profile's
        three-output network, a map name (``"cbv"``, ``"cbf"``, ``"tmax"``) a network with that
        single output (without CBV it has no physics term; see
        ``stnet_lib.experiments.ablations``). Values of :data:`OUTPUT_CHOICES`, each once.
    samples : int
        Training samples each run sees (its epochs = samples / samples per epoch, at least 1),
        so that runs of different strides and ratios get the same compute budget.
    n_subjects : int or None
        Labelled test subjects the runs are scored on (None = all of them).
    """

    strides: tuple[int, ...]
    ratios: tuple[float, ...]
    learning_rates: tuple[float, ...]
    physics_weights: tuple[float, ...]
    samples: int
    n_subjects: int | None = None
    outputs: tuple[str, ...] = OUTPUT_CHOICES

    def __post_init__(self) -> None:
        """Refuse unknown or repeated points of the outputs axis."""
        for value in self.outputs:
            check_in_allowed(value, OUTPUT_CHOICES, "ablation outputs")
        if len(set(self.outputs)) != len(self.outputs):
            raise StnetInputError(f"ablation outputs must not repeat a value; got {self.outputs!r}")


@dataclass(frozen=True)
class NoiseStudyPlan:
    """The baselines' noise-robustness study (:func:`stnet_lib.experiments.noise_study.noise_study`).

    Attributes
    ----------
    seeds : tuple of int
        One subject per seed; 9101 onwards are the TTV tests' unseen subjects (TTV was tuned on
        7000–7003).
    snrs : tuple of float
        Noise levels on the tissue curves (σ = median brain S0 / SNR).
    shape : tuple of int
        Subject grid (x, y, z): by default the paper's in-plane grid, 256×256, with 3 of its slices.
    voxel_mm : tuple of float
        Voxel size [mm]: by default the paper's, 0.9×0.9×5. The result depends on it: TTV's spatial
        TV smooths across tissue boundaries, which costs it most on coarse voxels
        (docs/decisions/0022-noise-study-on-the-papers-voxel-size.md).
    """

    seeds: tuple[int, ...] = tuple(range(9101, 9107))
    snrs: tuple[float, ...] = (20.0, 10.0, 5.0)
    shape: tuple[int, int, int] = (256, 256, 3)
    voxel_mm: tuple[float, float, float] = (0.9, 0.9, 5.0)


@dataclass(frozen=True)
class Profile:
    """Everything a report of one profile needs.

    Attributes
    ----------
    name : str
    description : str
        One line for the report's README.
    cohort : CohortProfile
        The synthetic cohort (grid, size, split, seed).
    train : TrainConfig
        ST-Net training (``seed`` is replaced by the report's ``seed`` parameter).
    baselines : tuple of str
        Deconvolution methods run over the test subjects (those not registered are skipped).
    method_options : dict
        Options per method for :func:`stnet_lib.pipeline.compute_maps` (e.g. fewer TTV
        iterations for ``smoke``).
    evaluation : EvaluationConfig
        Hypoperfusion threshold and data ranges; both conventions are always reported.
    ablations : AblationPlan
        Fig. 3.
    noise_study : NoiseStudyPlan
        Subjects and noise levels of the baselines' noise-robustness figure.
    timing_repeats : int
        Timed runs per method (after one warm-up); the median is reported.
    """

    name: str
    description: str
    cohort: CohortProfile
    train: TrainConfig
    baselines: tuple[str, ...] = BASELINES
    method_options: dict = field(default_factory=dict)
    evaluation: EvaluationConfig = EvaluationConfig()
    ablations: AblationPlan = AblationPlan((3,), (2.0,), (1e-3,), (0.0, 0.1), samples=1000)
    noise_study: NoiseStudyPlan = NoiseStudyPlan()
    timing_repeats: int = 3

    def with_seed(self, seed: int) -> Profile:
        """This profile with the training (and ablation) seed ``seed``."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, seed=int(seed)))

    def to_dict(self) -> dict:
        """Plain-type record for sidecars and the README."""
        return dataclasses.asdict(self)


def _weights(train: TrainConfig) -> tuple[float, float]:
    """No physics loss, and the profile's weight."""
    return (0.0, train.physics_weight)


#: Cohorts: smoke: seconds, for CI; quick and paper: the paper's 138 subjects, split 52 labelled
#: train/val (42/10, our choice) + 86 test (18 labelled, 20 without a lesion): quick on a 64×64×6
#: grid of 3.6×3.6×8 mm (simulated in under a minute on 2 cores), paper on the paper's 256×256×20.
#: Fig. 3 budgets: ``quick`` gives each run 40,000 samples (about 5 of its epochs; with batches of
#: 128 ST-Net leaves its initial plateau after 7,000–15,000 samples) and keeps two values per axis,
#: to stay within the report's time budget (each run about 35 s on 2 cores); ``smoke`` one epoch per run.
#: Noise study: ``quick`` on the paper's slab at half its in-plane resolution (128×128×3 voxels of
#: 1.8×1.8×5 mm; 50 s on 2 cores against 206 s for the paper's 256×256×3, with the same conclusion:
#: docs/decisions/0070-ttv-criterion-test-grid.md); ``paper`` on the paper's grid with 20 subjects.
PROFILES = {
    "smoke": Profile(
        "smoke", "a few tiny subjects: checks that every notebook runs (numbers mean nothing)",
        CohortProfile("smoke", (32, 32, 4), (7.0, 7.0, 10.0), 2, 1, 1, 1, 1, seed=11), TRAIN_PROFILES["smoke"],
        method_options={"ttv": {"n_iter": 10}},
        ablations=AblationPlan(strides=(2, 3), ratios=(1.0, 2.0), learning_rates=(TRAIN_PROFILES["smoke"].lr,),
                               physics_weights=_weights(TRAIN_PROFILES["smoke"]), samples=32, n_subjects=1,
                               outputs=OUTPUT_CHOICES),
        noise_study=NoiseStudyPlan(seeds=(9101,), snrs=(10.0,), shape=(64, 64, 6), voxel_mm=(3.6, 3.6, 5.0)),
        timing_repeats=1,
    ),
    "quick": Profile(
        "quick", "a small realistic cohort on a 2-core CPU (the default of `make report`)",
        CohortProfile("quick", (64, 64, 6), (3.6, 3.6, 8.0), 42, 10, 18, 68, 20, seed=12, n_train_variants=42), TRAIN_PROFILES["quick"],
        ablations=AblationPlan(strides=(1, 3), ratios=(1.0, 2.0),
                               learning_rates=(TRAIN_PROFILES["quick"].lr, TRAIN_PROFILES["paper"].lr),
                               physics_weights=_weights(TRAIN_PROFILES["quick"]), samples=40_000, n_subjects=None,
                               outputs=OUTPUT_CHOICES),
        noise_study=NoiseStudyPlan(shape=(128, 128, 3), voxel_mm=(1.8, 1.8, 5.0)),
        timing_repeats=3,
    ),
    "paper": Profile(
        "paper", "the paper's cohort size, grid, split and training settings, on one GPU",
        CohortProfile("paper", (256, 256, 20), (0.9, 0.9, 5.0), 42, 10, 18, 68, 20, seed=13, n_train_variants=42), TRAIN_PROFILES["paper"],
        ablations=AblationPlan(strides=(1, 2, 3, 4, 5), ratios=(1.0, 2.0, 3.0, 4.0),
                               learning_rates=(1e-3, TRAIN_PROFILES["paper"].lr, 1e-5),
                               physics_weights=_weights(TRAIN_PROFILES["paper"]), samples=5_000_000,
                               outputs=OUTPUT_CHOICES),
        noise_study=NoiseStudyPlan(seeds=tuple(range(9101, 9121)), snrs=(40.0, 20.0, 10.0, 5.0)),
        timing_repeats=5,
    ),
}


def get_profile(name: str, seed: int | None = None) -> Profile:
    """The profile ``name`` (``smoke``, ``quick``, ``paper``), with the training seed ``seed`` if given."""
    profile = PROFILES[check_in_allowed(name, PROFILES, "profile")]
    return profile if seed is None else profile.with_seed(seed)
