"""load_scan with a BIDS sidecar, the acquisition checks, and the record save_maps writes (maps.json)."""

import json
import logging
import os
import stat

import nibabel as nib
import numpy as np
import pytest

from stnet_lib import compute_maps, load_scan, save_maps
from stnet_lib.acquisition import check_acquisition_value, sidecar_path
from stnet_lib._validation import StnetInputError

SIDECAR = {"EchoTime": 0.03, "RepetitionTime": 1.5, "MagneticFieldStrength": 3, "SliceTiming": [0.0, 0.75]}


def _with_sidecar(small_scan, content=SIDECAR):
    path = sidecar_path(small_scan["dsc"])
    path.write_text(json.dumps(content))
    return path


def test_sidecar_path_is_beside_the_series(tmp_path):
    assert sidecar_path(tmp_path / "sub-01_dsc.nii.gz") == tmp_path / "sub-01_dsc.json"
    assert sidecar_path(tmp_path / "a.b.nii") == tmp_path / "a.b.json"


def test_sidecar_gives_te_tr_field_and_slice_timing(small_scan, caplog):
    _with_sidecar(small_scan)
    with caplog.at_level(logging.WARNING):
        scan = load_scan(small_scan["dsc"], small_scan["aif"], brain_mask=small_scan["brain"])
    assert (scan.te_ms, scan.tr_s, scan.field_t) == (pytest.approx(30.0), 1.5, 3.0)
    np.testing.assert_array_equal(scan.slice_timing_s, [0.0, 0.75])
    assert {k: scan.provenance[k] for k in ("te_ms", "tr_s", "field_t", "slice_timing_s")} == dict.fromkeys(
        ("te_ms", "tr_s", "field_t", "slice_timing_s"), "sidecar")
    assert scan.provenance["sidecar"]["EchoTime"] == 0.03 and scan.provenance["computed_masks"] == []
    assert scan.provenance["source"] == str(small_scan["dsc"].resolve())
    assert not caplog.records  # the sidecar agrees with the header's TR: nothing to warn about


def test_given_values_override_the_sidecar_with_a_warning_naming_both(small_scan, caplog):
    _with_sidecar(small_scan)
    with caplog.at_level(logging.WARNING):
        scan = load_scan(small_scan["dsc"], small_scan["aif"], te_ms=25.0, field_t=1.5, given_as="flag")
    assert (scan.te_ms, scan.field_t) == (25.0, 1.5)
    assert (scan.provenance["te_ms"], scan.provenance["field_t"], scan.provenance["tr_s"]) == ("flag", "flag", "sidecar")
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "--te-ms = 25 ms disagrees with EchoTime in dsc.json = 0.03 s: using --te-ms" in messages
    assert "--field-t = 1.5 T disagrees with MagneticFieldStrength in dsc.json = 3 T" in messages
    assert scan.provenance["computed_masks"] == ["brain"]


def test_default_field_is_warned_and_recorded(small_scan, caplog):
    with caplog.at_level(logging.WARNING):
        scan = load_scan(small_scan["dsc"], small_scan["aif"], te_ms=30.0)
    assert scan.field_t == 1.5 and scan.provenance["field_t"] == "default"
    assert scan.provenance["tr_s"] == "header" and scan.provenance["te_ms"] == "argument"
    assert any("assuming 1.5 T" in r.getMessage() for r in caplog.records)
    assert scan.slice_timing_s is None and scan.aif_mask.sum() == 1


def test_te_from_dcm2niix_description_in_the_header(small_scan, tmp_path):
    image = nib.load(small_scan["dsc"])
    image.header["descrip"] = b"TE=45;Time=80000.000"
    nib.save(image, tmp_path / "described.nii.gz")
    scan = load_scan(tmp_path / "described.nii.gz", field_t=3.0)
    assert scan.te_ms == 45.0 and scan.provenance["te_ms"] == "header" and scan.aif_mask is None


@pytest.mark.parametrize(
    ("raw", "key", "name", "unit", "scale", "message"),
    [
        (0.03, "te_ms", "--te-ms", None, 1.0, "--te-ms = 0.03 ms is outside the plausible 5–120 ms: 0.03 looks like "
                                              "seconds: --te-ms is in milliseconds"),
        (2000, "tr_s", "--tr-s", None, 1.0, "2000 looks like milliseconds: --tr-s is in seconds"),
        (30, "te_ms", "EchoTime in x.json", "s", 1000.0, "EchoTime in x.json = 30 s is outside the plausible "
                                                         "0.005–0.12 s: 30 looks like milliseconds"),
        (0.1, "tr_s", "--tr-s", None, 1.0, "--tr-s = 0.1 s is outside the plausible 0.2–5 s"),
        (15, "field_t", "--field-t", None, 1.0, "--field-t = 15 T is outside the plausible 0.5–11.7 T"),
        (0, "tr_s", "--tr-s", None, 1.0, "--tr-s must be a positive number in s; got 0"),
        (-3, "te_ms", "te_ms", None, 1.0, "te_ms must be a positive number in ms; got -3"),
        ("fast", "tr_s", "tr_s", None, 1.0, "tr_s must be a positive number in s; got 'fast'"),
        (float("nan"), "field_t", "field_t", None, 1.0, "field_t must be a positive number in T"),
    ],
)
def test_implausible_acquisition_values_are_refused_with_a_unit_hint(raw, key, name, unit, scale, message):
    with pytest.raises(StnetInputError) as error:
        check_acquisition_value(raw, key, name, unit=unit, scale=scale)
    assert message in str(error.value)


def test_plausible_values_pass_converted():
    assert check_acquisition_value(0.03, "te_ms", "EchoTime", unit="s", scale=1000.0) == pytest.approx(30.0)
    assert check_acquisition_value("1.5", "tr_s", "tr_s") == 1.5
    assert check_acquisition_value(7, "field_t", "field_t") == 7.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({**SIDECAR, "EchoTime": 30}, "EchoTime in dsc.json = 30 s is outside the plausible 0.005–0.12 s: 30 looks "
                                      "like milliseconds: EchoTime in dsc.json is in seconds"),
        ({**SIDECAR, "RepetitionTime": 1500}, "1500 looks like milliseconds: RepetitionTime in dsc.json is in seconds"),
        ({**SIDECAR, "SliceTiming": [0, 0.5, 1.0]}, "SliceTiming in dsc.json has 3 value(s) for 2 slice(s)"),
        ({**SIDECAR, "SliceTiming": [0, 2.0]}, "SliceTiming in dsc.json must hold times in [0, TR = 1.5 s)"),
        ({**SIDECAR, "EchoTime": [0.015, 0.045]}, "EchoTime in dsc.json is a list"),
        ([1, 2], "is not a JSON object"),
    ],
)
def test_bad_sidecars_are_refused(small_scan, content, message):
    _with_sidecar(small_scan, content)
    with pytest.raises(StnetInputError) as error:
        load_scan(small_scan["dsc"], small_scan["aif"])
    assert message in str(error.value)


def test_unreadable_sidecar(small_scan):
    sidecar_path(small_scan["dsc"]).write_text("{not json")
    with pytest.raises(StnetInputError, match="cannot read the sidecar .*dsc.json.*fix the JSON or move it away"):
        load_scan(small_scan["dsc"], small_scan["aif"], te_ms=30)


def test_negative_and_truncated_series_and_an_aif_outside_the_brain(small_scan, tmp_path):
    signal = nib.load(small_scan["dsc"]).get_fdata()
    wrapped = signal.copy()
    wrapped[2, 2, 1, 10] = -32768
    nib.save(nib.Nifti1Image(wrapped.astype(np.int16), small_scan["affine"]), tmp_path / "wrapped.nii.gz")
    with pytest.raises(StnetInputError, match="1 negative values .*int16 overflow"):
        load_scan(tmp_path / "wrapped.nii.gz", te_ms=30, tr_s=1.5)
    data = small_scan["dsc"].read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(StnetInputError, match="cannot read the voxels of DSC series .*truncated or corrupt"):
        load_scan(tmp_path / "cut.nii.gz", te_ms=30)
    padded = np.zeros((16, 5, 2, signal.shape[-1]), np.float32)
    padded[:6] = signal
    nib.save(nib.Nifti1Image(padded, small_scan["affine"]), tmp_path / "wide.nii.gz")
    brain, far = np.zeros((16, 5, 2), np.uint8), np.zeros((16, 5, 2), np.uint8)
    brain[1:6], far[12, 2, 0] = 1, 1
    for name, mask in {"brain": brain, "far": far}.items():
        nib.save(nib.Nifti1Image(mask, small_scan["affine"]), tmp_path / f"{name}.nii.gz")
    with pytest.raises(StnetInputError, match="AIF mask's 1 voxel.* all lie outside the brain"):
        load_scan(tmp_path / "wide.nii.gz", tmp_path / "far.nii.gz", brain_mask=tmp_path / "brain.nii.gz", te_ms=30,
                  tr_s=1.5)
    far[12, 2, 0], far[7, 2, 0] = 0, 1  # within 2 voxels of the brain, but background: no signal
    nib.save(nib.Nifti1Image(far, small_scan["affine"]), tmp_path / "far.nii.gz")
    with pytest.raises(StnetInputError, match="AIF mask's 1 voxel.* have no signal"):
        load_scan(tmp_path / "wide.nii.gz", tmp_path / "far.nii.gz", brain_mask=tmp_path / "brain.nii.gz", te_ms=30,
                  tr_s=1.5)


def test_maps_json_records_the_run_and_the_folder_is_readable(small_scan, tmp_path):
    _with_sidecar(small_scan)
    scan = load_scan(small_scan["dsc"], small_scan["aif"], brain_mask=small_scan["brain"], te_ms=30.0,
                     given_as="flag")
    maps = compute_maps(scan, "csvd")
    maps.params["aif_curve"] = np.linspace(0.0, 1.0, 4)  # arrays (the curve preparation's curves) become lists
    out = save_maps(maps, tmp_path / "maps", scan=scan)
    record = json.loads((out / "maps.json").read_text())
    assert record["acquisition"] == {"te_ms": 30.0, "tr_s": 1.5, "field_t": 3.0, "slice_timing_s": [0.0, 0.75]}
    assert record["provenance"]["te_ms"] == "flag" and record["provenance"]["field_t"] == "sidecar"
    assert record["provenance"]["sidecar"]["path"] == str(sidecar_path(small_scan["dsc"]).resolve())
    assert record["params"]["aif_curve"] == [0.0, 1 / 3, 2 / 3, 1.0] and record["method"] == "csvd"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert stat.S_IMODE((out / "maps.json").stat().st_mode) == 0o666 & ~umask
    np.testing.assert_allclose(nib.load(out / "cbf.nii.gz").affine, small_scan["affine"])
