"""The paper profile is the paper's; ablation runs vary one setting each; seeds and names are checked."""

import dataclasses

import pytest

from stnet_lib import paper
from stnet_lib._validation import StnetInputError
from stnet_lib.experiments.ablations import AXES, OUTPUTS_AXIS, ablation_runs
from stnet_lib.network.stnet import TARGET_NAMES
from stnet_lib.profiles import PROFILES, AblationPlan, get_profile
from stnet_lib.simulation.cohort import subject_plan


def test_the_paper_profile_has_the_papers_cohort_split_and_training():
    profile = PROFILES["paper"]
    cohort, train = profile.cohort, profile.train
    assert cohort.n_subjects == 138
    assert cohort.n_test_labelled + cohort.n_test_unlabelled == paper.TABLE2_N_SUBJECTS
    assert cohort.n_test_labelled == paper.TABLE1_N_SUBJECTS
    assert cohort.n_train + cohort.n_val == 52
    assert (cohort.shape, cohort.n_frames) == ((256, 256, 20), 50)
    assert (train.lr, train.batch_size, train.epochs, train.patience, train.stride, train.ratio) == (
        1e-4, 512, 400, 50, 3, 2.0)


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_quick_and_paper_cohorts_have_the_papers_split_and_numbers_of_subjects(name):
    """Issue #16: the quick report's tables carry the paper's n (Table 1: 18, Table 2: 86)."""
    plan = subject_plan(PROFILES[name].cohort)
    plan = plan[~plan["plain_aif"]]  # the paper's split; the training variants of decision 0077 come after it
    test = plan[plan["split"] == "test"]
    assert plan["split"].value_counts().to_dict() == {"test": paper.TABLE2_N_SUBJECTS, "train": 42, "val": 10}
    assert test["has_lesion_label"].sum() == paper.TABLE1_N_SUBJECTS
    assert plan.loc[plan["split"] != "test", "has_lesion_label"].all()  # every train/val subject is labelled
    assert 0 < (~test["has_lesion"]).sum() < len(test) - paper.TABLE1_N_SUBJECTS  # lesion-free subjects kept


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_ablation_axis_includes_the_profiles_own_setting(name):
    profile = PROFILES[name]
    for plan_name, field in AXES.items():
        assert getattr(profile.train, field) in getattr(profile.ablations, plan_name), (name, field)
    assert profile.ablations.outputs == ("all", *TARGET_NAMES)  # the three-output run and one per map


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_ablation_runs_share_the_base_run_and_change_one_setting_each(name):
    profile = PROFILES[name]
    runs, points = ablation_runs(profile)
    extra = sum(len(getattr(profile.ablations, plan)) - 1 for plan in AXES) + len(profile.ablations.outputs) - 1
    assert len(runs) == 1 + extra
    assert len(points) == sum(len(getattr(profile.ablations, plan)) for plan in AXES) + len(profile.ablations.outputs)
    base = dataclasses.asdict(profile.train)
    for run in runs:
        changed = {k for k, v in dataclasses.asdict(run.config).items() if v != base[k]}
        if run.outputs == TARGET_NAMES:
            assert len(changed) <= 1 and changed <= set(AXES.values()), run.name
        else:  # a single-output network: the profile's training, without the physics term when it has no CBV
            assert len(run.outputs) == 1 and run.name.endswith(f"_{run.outputs[0]}-only")
            assert changed == (set() if run.outputs == ("cbv",) else {"physics_weight"}), run.name
            assert run.config.physics_weight == (base["physics_weight"] if run.outputs == ("cbv",) else 0.0)
    outputs = points[points["axis"] == OUTPUTS_AXIS]
    by_name = {run.name: run for run in runs}
    assert list(outputs["value"]) == list(profile.ablations.outputs)
    assert [by_name[r].outputs for r in outputs["run"]] == [TARGET_NAMES] + [(m,) for m in TARGET_NAMES]
    assert by_name[outputs["run"].iloc[0]].config == profile.train  # "all" is the base run every axis shares


@pytest.mark.parametrize(("outputs", "match"), [(("all", "mtt"), "ablation outputs must be one of"),
                                                (("cbf", "cbf"), "must not repeat")])
def test_the_outputs_axis_refuses_unknown_and_repeated_points(outputs, match):
    with pytest.raises(ValueError, match=match):
        AblationPlan((3,), (2.0,), (1e-3,), (0.1,), samples=10, outputs=outputs)


def test_with_seed_changes_only_the_training_seed():
    profile = get_profile("quick", seed=7)
    assert profile.train.seed == 7
    assert dataclasses.replace(profile.train, seed=PROFILES["quick"].train.seed) == PROFILES["quick"].train
    assert profile.cohort == PROFILES["quick"].cohort


def test_an_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(StnetInputError, match=r"profile must be one of \('smoke', 'quick', 'paper'\); got 'fast'"):
        get_profile("fast")
