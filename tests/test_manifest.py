"""The manifest: one definition of the columns, every bad row named by line and column."""

import pandas as pd
import pytest

from stnet_lib._validation import StnetInputError
from stnet_lib.manifest import MANIFEST_COLUMNS, load_manifest, write_manifest


@pytest.fixture
def manifest(small_scan):
    rows = [
        {"subject_id": "sub-01", "split": "train", "dsc": "dsc.nii.gz", "aif_mask": "aif.nii.gz",
         "brain_mask": "brain.nii.gz", "te_ms": "30", "tr_s": "", "has_lesion_label": "true"},
        {"subject_id": "sub-02", "split": "test", "dsc": str(small_scan["dsc"]), "aif_mask": "aif.nii.gz",
         "te_ms": "45", "tr_s": "1.5", "field_t": "3"},
    ]
    path = small_scan["tmp"] / "data_manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_valid_manifest_loads_with_absolute_paths_and_defaults(manifest, small_scan):
    table = load_manifest(manifest)
    assert list(table.subject_id) == ["sub-01", "sub-02"]
    assert table.dsc[0] == small_scan["dsc"] and table.dsc[1] == small_scan["dsc"]
    assert table.brain_mask[1] is None and table.te_ms[1] == 45.0
    assert table.has_lesion_label.tolist() == [True, False]
    assert pd.isna(table.field_t[0]) and table.field_t[1] == 3.0  # empty: load_scan reads a sidecar or warns
    assert pd.isna(table.tr_s[0]) and table.tr_s[1] == 1.5


def test_round_trip_through_write_manifest(manifest, tmp_path):
    table = load_manifest(manifest)
    copy = write_manifest(table, manifest.parent / "copy.csv")
    again = load_manifest(copy)
    assert again.dsc.tolist() == table.dsc.tolist()
    assert "dsc.nii.gz" in copy.read_text()  # written relative to its folder


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("split", "training", r"line 3 \(subject 'sub-02'\), column 'split': 'training' is not one of"),
        ("te_ms", "", r"line 3 \(subject 'sub-02'\): the echo time is missing: pass te_ms in milliseconds"),
        ("te_ms", "-3", r"line 3 \(subject 'sub-02'\), column 'te_ms' must be a positive number in ms; got '-3'"),
        ("tr_s", "fast", r"column 'tr_s' must be a positive number in s; got 'fast'"),
        ("te_ms", "0.03", r"column 'te_ms' = 0.03 ms is outside the plausible 5–120 ms: 0.03 looks like seconds"),
        ("tr_s", "1500", r"column 'tr_s' = 1500 s is outside the plausible 0.2–5 s: 1500 looks like milliseconds"),
        ("field_t", "0", r"column 'field_t' must be a positive number in T"),
        ("field_t", "30", r"column 'field_t' = 30 T is outside the plausible 0.5–11.7 T"),
        ("aif_mask", "missing.nii.gz", r"column 'aif_mask': file not found: .*missing.nii.gz"),
        ("has_lesion_label", "maybe", r"column 'has_lesion_label': 'maybe' is not true or false"),
        ("subject_id", "sub-01", r"subject_id 'sub-01' appears more than once"),
    ],
)
def test_bad_rows_are_named(manifest, column, value, message):
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table.loc[1, column] = value
    table.to_csv(manifest, index=False)
    with pytest.raises(StnetInputError, match=message):
        load_manifest(manifest)


def test_missing_column_and_missing_file(manifest, tmp_path):
    pd.read_csv(manifest).drop(columns=["dsc"]).to_csv(manifest, index=False)
    with pytest.raises(StnetInputError, match=r"lacks column\(s\) \['dsc'\]"):
        load_manifest(manifest)
    with pytest.raises(StnetInputError, match="manifest not found"):
        load_manifest(tmp_path / "none.csv")


def test_columns_are_defined_once_and_cover_the_issue():
    names = [c.name for c in MANIFEST_COLUMNS]
    assert len(names) == len(set(names))
    assert {"subject_id", "split", "dsc", "brain_mask", "aif_mask", "vof_mask", "lesion_mask",
            "cbv", "cbf", "mtt", "tmax", "te_ms", "tr_s", "has_lesion_label"} <= set(names)


def test_sidecar_stands_in_for_acquisition_columns_and_aif_mask_is_optional(small_scan):
    """te_ms, tr_s, field_t, aif_mask may be empty where the series' sidecar has the values (load_scan reads them)."""
    (small_scan["tmp"] / "dsc.json").write_text('{"EchoTime": 0.025, "RepetitionTime": 1.5, "MagneticFieldStrength": 3}')
    path = small_scan["tmp"] / "sidecar_manifest.csv"
    pd.DataFrame([{"subject_id": "s", "split": "test", "dsc": "dsc.nii.gz"}]).to_csv(path, index=False)
    table = load_manifest(path)
    assert table.aif_mask[0] is None and pd.isna(table.te_ms[0]) and pd.isna(table.field_t[0])
    (small_scan["tmp"] / "dsc.json").write_text('{"EchoTime": 25}')
    with pytest.raises(StnetInputError, match=r"line 2 \(subject 's'\): EchoTime in dsc.json = 25 s .*looks like milli"):
        load_manifest(path)


def test_unknown_columns_are_warned_with_a_guess(manifest, caplog):
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False).assign(TR="1.5", snr="20")
    table.to_csv(manifest, index=False)
    with caplog.at_level("WARNING"):
        load_manifest(manifest)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["manifest data_manifest.csv has unknown column(s) ['TR'], which are ignored (did you mean "
                        "TR → tr_s?)"]  # snr is one of stnet simulate's own columns


def test_a_3d_series_is_named_by_its_line(manifest, small_scan):
    import nibabel as nib

    image = nib.load(small_scan["dsc"])
    nib.save(nib.Nifti1Image(image.get_fdata()[..., 0], image.affine), small_scan["tmp"] / "flat.nii.gz")
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table.loc[1, "dsc"] = "flat.nii.gz"
    table.to_csv(manifest, index=False)
    with pytest.raises(StnetInputError, match=r"line 3 \(subject 'sub-02'\): the DSC series .*flat.nii.gz has shape "
                                              r"\(6, 5, 2\): a 4-D"):
        load_manifest(manifest)
    assert load_manifest(manifest, check_files=False).dsc[1].name == "flat.nii.gz"
