"""Malformed inputs to `stnet maps`, `stnet convert`, `stnet train` and the manifest loader.

Every case must give exit status 2 and exactly one line on stderr starting ``stnet: error:``, no
traceback, nothing in the output place, and leave every input byte-identical. The CLI runs in
process (fast); two cases also run as a subprocess to show that no traceback reaches a terminal.
"""

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from stnet_lib.cli import main
from test_dicom import AFFINE_RAS, SHAPE, synthetic_signal, write_dicom, write_nifti

pytest.importorskip("pydicom")


def _save(path: Path, data, affine=AFFINE_RAS, *, zooms=None) -> Path:
    image = nib.Nifti1Image(data, affine)
    if zooms is not None:
        image.header.set_zooms(zooms)
    nib.save(image, path)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid subject (NIfTI + sidecar, masks, DICOM) that each case breaks in one way."""
    root = tmp_path_factory.mktemp("fuzz")
    signal = synthetic_signal()
    brain = np.zeros(SHAPE, np.uint8)
    brain[3:13, 3:13] = 1
    aif = np.zeros(SHAPE, np.uint8)
    aif[6, 8] = 1
    return {"root": root, "signal": signal, "dsc": write_nifti(signal, root / "dsc.nii.gz"),
            "brain": _save(root / "brain.nii.gz", brain), "aif": _save(root / "aif.nii.gz", aif),
            "dicom": write_dicom(signal[..., :6], root / "dicom")}


def _maps(base, dsc=None, *extra, aif=True):
    args = ["maps", "--dsc", str(dsc or base["dsc"]), "--brain-mask", str(base["brain"])]
    return args + (["--aif-mask", str(base["aif"])] if aif else []) + list(extra)


def _series(base, folder, data, *, sidecar=None, zooms=(2.0, 2.0, 5.0, 1.5)):
    """A broken copy of the series (with a sidecar unless told otherwise) in ``folder``."""
    path = _save(folder / "dsc.nii.gz", data, zooms=zooms[: np.ndim(data)] if np.ndim(data) <= 4 else None)
    write_sidecar = {"EchoTime": 0.03, "RepetitionTime": 1.5, "MagneticFieldStrength": 3} if sidecar is None else sidecar
    if write_sidecar:
        (folder / "dsc.json").write_text(json.dumps(write_sidecar) if isinstance(write_sidecar, dict) else write_sidecar)
    return path


def _with_values(base, folder, **changes):
    signal = base["signal"].astype(np.float32)
    for index, value in changes.items():
        signal[tuple(int(i) for i in index.split("_"))] = value
    return signal


def _manifest(base, folder, rows=None, **row):
    """A manifest (train + val rows on the base subject, with ``row`` changing the first)."""
    fields = {"subject_id": "sub-01", "split": "train", "dsc": str(base["dsc"]), "aif_mask": str(base["aif"]),
              "brain_mask": str(base["brain"]), "te_ms": "30", "tr_s": "1.5", "field_t": "3"}
    table = rows if rows is not None else [{**fields, **row}, {**fields, "subject_id": "sub-02", "split": "val"}]
    path = folder / "data_manifest.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def _train(manifest):
    return ["train", "--manifest", str(manifest), "--device", "cpu", "--no-progress", "--epochs", "1"]


#: Seeds of the corrupt DICOM payloads. Seed 170's bytes make pydicom log "Expected implicit VR, but found
#: explicit VR", which reached stderr beside the error line when the payloads were os.urandom (a CI run
#: failed on 2026-12-08); the others make it log nothing.
CORRUPT_DICOM_SEEDS = (170, 0, 1, 2, 3)


def _corrupt_dicom(base, folder):
    folder = folder / "dicom"
    folder.mkdir()
    for index, seed in enumerate(CORRUPT_DICOM_SEEDS):
        payload = np.random.default_rng(seed).bytes(300)
        (folder / f"IM{index}.dcm").write_bytes(b"\0" * 128 + b"DICM" + payload)
    return folder


def _truncated_dicom(base, folder):
    folder = folder / "dicom"
    folder.mkdir()
    for path in sorted(base["dicom"].iterdir()):
        data = path.read_bytes()
        (folder / path.name).write_bytes(data[: len(data) - 300])  # the pixel data cut short
    return folder


def _mixed_dicom(base, folder):
    write_dicom(base["signal"][..., :4], folder / "dicom" / "a", series_number=3, description="perf_a")
    write_dicom(base["signal"][..., :4], folder / "dicom" / "b", series_number=4, description="perf_b")
    return folder / "dicom"


def _maps_dicom(folder, *extra):
    return ["maps", "--dicom", str(folder), *extra]


def _convert(folder, *extra):
    return ["convert", "--dicom", str(folder), *extra]


def _int16_overflow(base, f):
    wrapped = (base["signal"].astype(np.int64) * 40).astype(np.int16)  # 1000 × 40 wraps below zero
    return _maps(base, _series(base, f, wrapped))


def _truncated(base, f):
    data = base["dsc"].read_bytes()
    (f / "dsc.nii.gz").write_bytes(data[: len(data) // 2])
    return _maps(base, f / "dsc.nii.gz", "--te-ms", "30", "--field-t", "3")


def _header_only(base, f):
    raw = gzip.decompress(base["dsc"].read_bytes())
    (f / "dsc.nii").write_bytes(raw[:352])
    return _maps(base, f / "dsc.nii", "--te-ms", "30", "--field-t", "3")


def _mask_other_grid(base, f):
    moved = AFFINE_RAS.copy()
    moved[0, 3] += 4.0
    return _maps(base, None, "--aif-mask", str(_save(f / "aif.nii.gz", np.asarray(nib.load(base["aif"]).dataobj),
                                                       moved)), aif=False)


def _aif_outside_brain(base, f):
    mask = np.zeros(SHAPE, np.uint8)
    mask[0, 0, 0] = 1
    return _maps(base, None, "--aif-mask", str(_save(f / "aif.nii.gz", mask)), aif=False)


def _mask_nan(base, f):
    mask = np.asarray(nib.load(base["brain"]).dataobj).astype(np.float32)
    mask[5, 5, 2] = np.nan
    return ["maps", "--dsc", str(base["dsc"]), "--brain-mask", str(_save(f / "brain.nii.gz", mask))]


def _manifest_3d(base, f):
    return _train(_manifest(base, f, dsc=str(_save(f / "dsc3d.nii.gz", base["signal"][..., 0]))))


def _manifest_truncated(base, f):
    data = base["dsc"].read_bytes()
    (f / "cut.nii.gz").write_bytes(data[: len(data) // 3])
    return _train(_manifest(base, f, dsc=str(f / "cut.nii.gz")))


#: name → (function(base, folder) → argv, text the error line must hold)
CASES = {
    # stnet maps, NIfTI route
    "missing series": (lambda b, f: _maps(b, f / "none.nii.gz"), "DSC series not found"),
    "garbage bytes": (lambda b, f: (f / "x.nii.gz").write_bytes(os.urandom(2000)) and _maps(b, f / "x.nii.gz"),
                      "cannot read DSC series"),
    "truncated NIfTI": (_truncated, "truncated or corrupt"),
    "header without voxels": (_header_only, "cannot read"),
    "NaN": (lambda b, f: _maps(b, _series(b, f, _with_values(b, f, **{"8_8_2_10": np.nan}))), "NaN or infinite"),
    "Inf": (lambda b, f: _maps(b, _series(b, f, _with_values(b, f, **{"8_8_2_10": np.inf}))), "NaN or infinite"),
    "5-D array": (lambda b, f: _maps(b, _series(b, f, b["signal"][..., None].repeat(2, axis=-1))), "a 4-D"),
    "3-D array": (lambda b, f: _maps(b, _series(b, f, b["signal"][..., 0])), "a 4-D"),
    "int16 overflow": (_int16_overflow, "negative values"),
    "zero TR flag": (lambda b, f: _maps(b, None, "--tr-s", "0"), "--tr-s must be a positive number"),
    "negative TR flag": (lambda b, f: _maps(b, None, "--tr-s", "-1.5"), "--tr-s must be a positive number"),
    "TE in seconds": (lambda b, f: _maps(b, None, "--te-ms", "0.03"), "0.03 looks like seconds: --te-ms is in milli"),
    "TR in ms": (lambda b, f: _maps(b, None, "--tr-s", "1500"), "1500 looks like milliseconds: --tr-s is in seconds"),
    "field 30 T": (lambda b, f: _maps(b, None, "--field-t", "30"), "--field-t = 30 T is outside"),
    "sidecar TE in ms": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar={"EchoTime": 30})),
                         "30 looks like milliseconds: EchoTime in dsc.json is in seconds"),
    "sidecar TR zero": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar={"EchoTime": 0.03,
                                                                                   "RepetitionTime": 0})),
                        "RepetitionTime in dsc.json must be a positive number"),
    "sidecar not JSON": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar="{EchoTime: 0.03")),
                         "cannot read the sidecar"),
    "sidecar slice timing": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar={"EchoTime": 0.03,
                                                                                        "SliceTiming": [0, 1]})),
                             "SliceTiming in dsc.json has 2 value(s) for 5 slice(s)"),
    "no TE": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar=False)), "the echo time is missing"),
    "no frame interval": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar=False, zooms=(2, 2, 5, 0)),
                                             "--te-ms", "30"), "no frame interval"),
    "header TR in ms": (lambda b, f: _maps(b, _series(b, f, b["signal"], sidecar={"EchoTime": 0.03},
                                                      zooms=(2, 2, 5, 1500)), "--field-t", "3"),
                        "1500 looks like milliseconds"),
    "two frames": (lambda b, f: _maps(b, _series(b, f, b["signal"][..., :2])), "frame"),
    "all zero": (lambda b, f: _maps(b, _series(b, f, np.zeros_like(b["signal"])), aif=False), "no signal"),
    "uniform, no brain": (lambda b, f: ["maps", "--dsc", str(_series(b, f, np.full_like(b["signal"], 700))),
                                        "--aif-mask", str(b["aif"])], "no brain found"),
    "no bolus": (lambda b, f: _maps(b, _series(b, f, np.full_like(b["signal"], 900))), "bolus"),
    "AIF outside the brain": (_aif_outside_brain, "all lie outside the brain"),
    "mask on another grid": (_mask_other_grid, "different affine"),
    "mask of another shape": (lambda b, f: _maps(b, None, "--aif-mask", str(_save(f / "m.nii.gz",
                                                                                   np.ones((4, 4, 2), np.uint8))),
                                                 aif=False), "does not match"),
    "empty AIF mask": (lambda b, f: _maps(b, None, "--aif-mask", str(_save(f / "m.nii.gz", np.zeros(SHAPE, np.uint8))),
                                          aif=False), "AIF mask is empty"),
    "NaN in a mask": (_mask_nan, "brain mask has 1 NaN"),
    "series without --dicom": (lambda b, f: _maps(b, None, "--series", "3"), "--series picks a series"),
    # stnet maps --dicom and stnet convert
    "DICOM folder missing": (lambda b, f: _convert(f / "none"), "DICOM folder not found"),
    "empty DICOM folder": (lambda b, f: (f / "dicom").mkdir() or _convert(f / "dicom"), "no DICOM series"),
    "corrupt DICOM files": (lambda b, f: _maps_dicom(_corrupt_dicom(b, f)), "no DICOM series"),
    "truncated DICOM files": (lambda b, f: _convert(_truncated_dicom(b, f)), "dcm2niix"),
    "mixed series": (lambda b, f: _maps_dicom(_mixed_dicom(b, f)), "holds 2 series (3: perf_a, 4: perf_b)"),
    "absent series number": (lambda b, f: _convert(b["dicom"], "--series", "9"), "has no series 9"),
    "multi-echo": (lambda b, f: _convert(write_dicom(b["signal"][..., :3], f / "me", echo_times_ms=(15.0, 45.0))),
                   "several echoes"),
    "non-EPI": (lambda b, f: _maps_dicom(write_dicom(b["signal"][..., :3], f / "se", scanning_sequence="SE")),
                "not an EPI acquisition"),
    "not MR": (lambda b, f: _convert(write_dicom(b["signal"][..., :3], f / "ct", modality="CT")), "is CT, not MR"),
    "DICOM mask on the NIfTI grid": (lambda b, f: _maps_dicom(b["dicom"], "--aif-mask", str(b["aif"])),
                                     "different affine"),
    # stnet train and the manifest loader
    "manifest 3-D series": (_manifest_3d, "data_manifest.csv line 2 (subject 'sub-01'): the DSC series"),
    "manifest TE in seconds": (lambda b, f: _train(_manifest(b, f, te_ms="0.03")), "line 2 (subject 'sub-01'), "
                               "column 'te_ms' = 0.03 ms is outside the plausible 5–120 ms: 0.03 looks like seconds"),
    "manifest TR in ms": (lambda b, f: _train(_manifest(b, f, tr_s="1500")), "1500 looks like milliseconds"),
    "manifest zero TR": (lambda b, f: _train(_manifest(b, f, tr_s="0")), "column 'tr_s' must be a positive number"),
    "manifest missing file": (lambda b, f: _train(_manifest(b, f, aif_mask="nope.nii.gz")), "file not found"),
    "manifest no TE anywhere": (lambda b, f: _train(_manifest(b, f, te_ms="", dsc=str(_series(b, f, b["signal"],
                                                                                             sidecar=False)))),
                                "line 2 (subject 'sub-01'): the echo time is missing"),
    "manifest truncated series": (_manifest_truncated, "truncated or corrupt"),
    "manifest no rows": (lambda b, f: _train(_manifest(b, f, rows=[])), "cannot read manifest"),
    "manifest binary": (lambda b, f: (f / "m.csv").write_bytes(b"\xff\xfe\x00" + os.urandom(200)) and _train(f / "m.csv"),
                        "manifest"),
    "manifest bad split": (lambda b, f: _train(_manifest(b, f, split="training")), "'training' is not one of"),
}


def _snapshot(root: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _case(base, name, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    build, expected = CASES[name]
    out = tmp_path / "out" / "result"
    args = build(base, folder) + ["--out", str(out)]
    return args, expected, out


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_gives_one_line_exit_2_and_touches_nothing(base, name, tmp_path, capsys):
    args, expected, out = _case(base, name, tmp_path)
    before = {**_snapshot(base["root"]), **_snapshot(tmp_path / "in")}
    capsys.readouterr()
    assert main(args) == 2, name
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stnet: error:"), (name, err)
    assert expected in lines[0], (name, lines[0])
    assert "Traceback" not in err
    assert not out.parent.exists() or not any(out.parent.iterdir()), name  # nothing written, no temporary left
    assert {**_snapshot(base["root"]), **_snapshot(tmp_path / "in")} == before, name


def test_at_least_30_cases_cover_every_entry_point(base, tmp_path):
    entries = []
    for index, name in enumerate(CASES):
        folder = tmp_path / str(index)
        folder.mkdir()
        args = CASES[name][0](base, folder)
        entries.append("maps --dicom" if args[:2] == ["maps", "--dicom"] else args[0])
    counts = {entry: entries.count(entry) for entry in ("maps", "maps --dicom", "convert", "train")}
    assert len(CASES) >= 30 and counts["maps"] >= 20 and counts["train"] >= 8, counts
    assert counts["maps --dicom"] >= 3 and counts["convert"] >= 5, counts


@pytest.mark.parametrize("name", ["truncated NIfTI", "corrupt DICOM files"])
def test_no_traceback_reaches_the_terminal(base, name, tmp_path):
    """The same refusals from a real process: one line on stderr, nothing else, exit 2."""
    args, expected, out = _case(base, name, tmp_path)
    result = subprocess.run([sys.executable, "-m", "stnet_lib.cli", *args], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("stnet: error:"), result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
