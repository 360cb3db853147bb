"""A DICOM series written here (pydicom) through the real dcm2niix: `stnet maps --dicom` equals the NIfTI route.

The subject: 16×16×5×40, TR 1.5 s, TE 30 ms, 3 T, slices acquired interleaved (0, 2, 4, 1, 3), a disc of
tissue (CBF 60 / CBV 4 for i < 8, CBF 25 / CBV 2 beyond) with three arterial and two venous voxels
per slice, S0 1000 (arteries 1200, veins 1100) with a little seeded noise (SD 4), stored as uint16. The same values are written once as a NIfTI with a BIDS
sidecar and once as a DICOM series (one file per slice and frame, Siemens-style per-slice
AcquisitionTime, from which dcm2niix derives SliceTiming).
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from curves import tissue_curves
from stnet_lib.cli import main
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal

pydicom = pytest.importorskip("pydicom")

SHAPE, N_FRAMES, TR_S, TE_MS, FIELD_T = (16, 16, 5), 40, 1.5, 30.0, 3.0
SLICE_ORDER = (0, 2, 4, 1, 3)  # acquisition order of the slices: interleaved, even slices first
VOXEL_MM = (2.0, 2.0, 5.0)
#: Venous voxels (a sinus at the disc's edge), in every slice.
VEINS = ((7, 12), (8, 12))
#: Voxel (i, j, k) lies at LPS (-16 + 2i, -16 + 2j, 5k); in RAS the affine below.
AFFINE_RAS = np.array([[-2.0, 0, 0, 16.0], [0, -2.0, 0, 16.0], [0, 0, 5.0, 0], [0, 0, 0, 1]])


def slice_timing_s(order=SLICE_ORDER, tr_s=TR_S):
    """Acquisition time of each slice (by position) within TR [s]."""
    n = len(order)
    return [order.index(k) * tr_s / n for k in range(n)]


def synthetic_signal(seed: int = 7) -> np.ndarray:
    """uint16 magnitude series (x, y, z, t): a disc of tissue, three arterial voxels per slice, zero outside."""
    i, j = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    disc = (i - 7.5) ** 2 + (j - 7.5) ** 2 < 6.5**2
    cbf = np.where(i < 8, 60.0, 25.0)
    cbv = np.where(i < 8, 4.0, 2.0)
    c_aif, c_tissue = tissue_curves(cbf.ravel(), cbv.ravel(), tr_s=TR_S, n_frames=N_FRAMES)
    delta_r2 = concentration_to_delta_r2(c_tissue, kind="tissue", field_t=FIELD_T).reshape(SHAPE[:2] + (N_FRAMES,))
    arteries = [(6, 8), (9, 7), (8, 10)]
    s0 = np.full(SHAPE[:2], 1000.0)
    for a in arteries:
        delta_r2[a] = concentration_to_delta_r2(c_aif, kind="arterial", field_t=FIELD_T)
        s0[a] = 1200.0  # inflow makes arterial blood brighter
    for v in VEINS:  # the AIF delayed by 2 s and dispersed (exp, 2 s), its area kept: k_AV = 1 (eq. 8)
        time_s = np.arange(N_FRAMES) * TR_S
        kernel = np.exp(-np.clip(time_s - 2.0, 0, None) / 2.0) * (time_s >= 2.0)
        c_vein = np.convolve(c_aif, kernel / kernel.sum())[:N_FRAMES]
        delta_r2[v] = concentration_to_delta_r2(c_vein, kind="arterial", field_t=FIELD_T)
        s0[v] = 1100.0
    signal = delta_r2_to_signal(delta_r2, s0, TE_MS)[:, :, None, :].repeat(SHAPE[2], axis=2)
    signal += np.random.default_rng(seed).normal(0.0, 4.0, signal.shape)
    signal[~disc] = 0.0
    return np.clip(np.round(signal), 0, 65535).astype(np.uint16)


def write_nifti(signal: np.ndarray, path: Path, *, sidecar: dict | None = None) -> Path:
    """The series as NIfTI (TR in the 4th zoom) with a BIDS sidecar beside it (default: the acquisition's)."""
    image = nib.Nifti1Image(signal, AFFINE_RAS)
    image.header.set_zooms(VOXEL_MM + (TR_S,))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)
    if sidecar is None:
        sidecar = {"EchoTime": TE_MS / 1000, "RepetitionTime": TR_S, "MagneticFieldStrength": FIELD_T,
                   "SliceTiming": slice_timing_s()}
    if sidecar:
        Path(str(path).replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    return path


def _time_text(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}{int(seconds % 3600 // 60):02d}{seconds % 60:09.6f}"


def write_dicom(signal: np.ndarray, folder: Path, *, series_number=5, description="ep2d_perf", scanning_sequence="EP",
                echo_times_ms=(TE_MS,), study_uid=None, modality="MR") -> Path:
    """One classic MR Image Storage file per slice, frame and echo; returns ``folder``.

    Every tag dcm2niix needs for one 4-D volume: geometry (ImagePositionPatient,
    ImageOrientationPatient, PixelSpacing, SliceThickness), InstanceNumber, AcquisitionNumber and
    TemporalPositionIdentifier per frame, EchoTime [ms], RepetitionTime [ms],
    MagneticFieldStrength [T], and a per-slice AcquisitionTime in the order of :data:`SLICE_ORDER`
    (just after midnight: dcm2niix holds the time of day in single precision, which at 08:00 rounds
    slice times to 2 ms steps).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = study_uid or generate_uid(), generate_uid(), generate_uid()
    nx, ny, nz, nt = signal.shape
    number = 0
    for echo, te_ms in enumerate(echo_times_ms, start=1):
        for t in range(nt):
            for k in range(nz):
                number += 1
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds = Dataset()
                ds.file_meta = meta
                ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
                ds.Modality, ds.Manufacturer, ds.PatientName, ds.PatientID = modality, "SIEMENS", "Synthetic", "syn-01"
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
                ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240101"
                ds.SeriesNumber, ds.SeriesDescription, ds.ProtocolName = series_number, description, description
                ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = scanning_sequence, "SK", "2D"
                ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
                ds.EchoTime, ds.EchoNumbers, ds.RepetitionTime = te_ms, echo, TR_S * 1000
                ds.MagneticFieldStrength, ds.FlipAngle = FIELD_T, 90
                ds.InstanceNumber, ds.AcquisitionNumber = number, t + 1
                ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, nt
                ds.AcquisitionTime = ds.ContentTime = _time_text(60 + t * TR_S + slice_timing_s()[k])
                ds.ImagePositionPatient = [-16.0, -16.0, VOXEL_MM[2] * k]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.SliceLocation, ds.SliceThickness, ds.SpacingBetweenSlices = VOXEL_MM[2] * k, VOXEL_MM[2], VOXEL_MM[2]
                ds.PixelSpacing = [VOXEL_MM[1], VOXEL_MM[0]]  # row spacing (along j), column spacing (along i)
                ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = ny, nx, 1, "MONOCHROME2"
                ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
                ds.PixelData = np.ascontiguousarray(signal[:, :, k, t].T).astype("<u2").tobytes()
                ds.save_as(folder / f"IM{series_number:03d}_{number:05d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """The synthetic subject as a NIfTI (+ sidecar) and as a DICOM folder."""
    folder = tmp_path_factory.mktemp("dicom_subject")
    signal = synthetic_signal()
    return {"signal": signal, "nifti": write_nifti(signal, folder / "dsc.nii.gz"),
            "dicom": write_dicom(signal, folder / "dicom"), "tmp": folder}


def canonical(path: Path) -> nib.Nifti1Image:
    return nib.as_closest_canonical(nib.load(path))


def test_maps_from_dicom_equal_maps_from_nifti_and_record_the_headers(subject, capsys):
    """`stnet maps --dicom DIR --method osvd --out OUT` with no other flag (automatic AIF, TE/TR/field
    from the headers) gives the maps of the NIfTI route on the same world grid."""
    dicom_out, nifti_out = subject["tmp"] / "maps_dicom", subject["tmp"] / "maps_nifti"
    assert main(["maps", "--dicom", str(subject["dicom"]), "--method", "osvd", "--out", str(dicom_out)]) == 0
    assert main(["maps", "--dsc", str(subject["nifti"]), "--method", "osvd", "--out", str(nifti_out)]) == 0
    cbv = nib.load(dicom_out / "cbv.nii.gz").get_fdata()  # on the converted grid: x (i) is not flipped
    assert np.nanmedian(cbv[:7]) == pytest.approx(4.0, rel=0.15)  # the truth, with TE, TR, field from the headers
    assert np.nanmedian(cbv[9:]) == pytest.approx(2.0, rel=0.15)
    for name in ("cbv", "cbf", "mtt", "tmax"):
        from_dicom, from_nifti = canonical(dicom_out / f"{name}.nii.gz"), canonical(nifti_out / f"{name}.nii.gz")
        np.testing.assert_allclose(from_dicom.affine, from_nifti.affine, atol=1e-4)
        a, b = from_dicom.get_fdata(), from_nifti.get_fdata()
        assert np.isfinite(a).sum() > 400, name  # the disc eroded by one voxel, 5 slices
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
    record = json.loads((dicom_out / "maps.json").read_text())
    assert record["acquisition"]["te_ms"] == pytest.approx(TE_MS)
    assert record["acquisition"]["tr_s"] == pytest.approx(TR_S)
    assert record["acquisition"]["field_t"] == pytest.approx(FIELD_T)
    assert record["acquisition"]["slice_timing_s"] == pytest.approx(slice_timing_s())
    provenance = record["provenance"]
    assert (provenance["te_ms"], provenance["tr_s"], provenance["field_t"]) == ("sidecar",) * 3
    assert provenance["sidecar"]["EchoTime"] == pytest.approx(TE_MS / 1000)
    source = provenance["source"]
    assert source["series_number"] == 5 and source["series_description"] == "ep2d_perf"
    assert source["series_instance_uid"] == str(pydicom.dcmread(next(subject["dicom"].iterdir())).SeriesInstanceUID)
    computed = {*provenance["computed_masks"], *record["params"].get("computed_masks", [])}
    assert {"brain", "aif"} <= computed
    assert record["stnet_version"]
    assert json.loads((nifti_out / "maps.json").read_text())["provenance"]["source"] == str(subject["nifti"].resolve())


def test_convert_writes_the_grid_masks_are_drawn_on(subject, capsys):
    """`stnet convert` writes NAME.nii.gz + NAME.json; an AIF mask drawn on that grid drives `maps --dicom`
    and `maps --dsc NAME.nii.gz` to the same maps."""
    name = subject["tmp"] / "converted" / "sub-01_dsc"
    assert main(["convert", "--dicom", str(subject["dicom"]), "--out", str(name)]) == 0
    nifti, sidecar = Path(f"{name}.nii.gz"), Path(f"{name}.json")
    assert "wrote" in capsys.readouterr().out
    image = nib.load(nifti)
    assert image.shape == SHAPE + (N_FRAMES,)
    np.testing.assert_array_equal(np.asarray(canonical(nifti).dataobj), np.asarray(nib.as_closest_canonical(
        nib.load(subject["nifti"])).dataobj))
    meta = json.loads(sidecar.read_text())
    assert (meta["EchoTime"], meta["RepetitionTime"], meta["MagneticFieldStrength"]) == (0.03, 1.5, 3)
    assert meta["SliceTiming"] == pytest.approx(slice_timing_s())
    # the arterial voxel (6, 8) of the original grid, found on the converted grid through the affines
    voxel = np.rint(np.linalg.solve(image.affine, AFFINE_RAS @ [6, 8, 1, 1])[:3]).astype(int)
    aif = np.zeros(SHAPE, np.uint8)
    aif[tuple(voxel)] = 1
    nib.save(nib.Nifti1Image(aif, image.affine), subject["tmp"] / "aif_converted.nii.gz")
    outs = [subject["tmp"] / "masked_dicom", subject["tmp"] / "masked_nifti"]
    for flag, source, out in zip(("--dicom", "--dsc"), (subject["dicom"], nifti), outs):
        assert main(["maps", flag, str(source), "--aif-mask", str(subject["tmp"] / "aif_converted.nii.gz"),
                     "--method", "csvd", "--out", str(out)]) == 0
    a, b = (nib.load(out / "cbf.nii.gz").get_fdata() for out in outs)
    np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)
    record = json.loads((outs[0] / "maps.json").read_text())
    assert record["provenance"]["computed_masks"] == ["brain"] and record["params"]["aif_mask"].endswith(
        "aif_converted.nii.gz")
    assert main(["convert", "--dicom", str(subject["dicom"]), "--out", str(name)]) == 2
    assert "already exist" in capsys.readouterr().err


def test_several_series_are_listed_and_one_is_picked(subject, tmp_path, capsys):
    """A folder with a DSC series and a non-EPI one: refused with both listed; --series picks."""
    folder = tmp_path / "study"
    write_dicom(subject["signal"][..., :3], folder / "t1", series_number=7, description="t1_se",
                scanning_sequence="SE")
    for path in subject["dicom"].iterdir():
        (folder / "perf").mkdir(exist_ok=True)
        (folder / "perf" / path.name).symlink_to(path)
    out = tmp_path / "out"
    assert main(["convert", "--dicom", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds 2 series (5: ep2d_perf, 7: t1_se): pick one with --series N" in err
    assert main(["convert", "--dicom", str(folder), "--series", "7", "--out", str(out)]) == 2
    assert "series 7: t1_se is not an EPI acquisition (ScanningSequence SE)" in capsys.readouterr().err
    assert main(["convert", "--dicom", str(folder), "--series", "9", "--out", str(out)]) == 2
    assert "has no series 9; its series are 5: ep2d_perf, 7: t1_se" in capsys.readouterr().err
    assert main(["convert", "--dicom", str(folder), "--series", "5", "--out", str(out)]) == 0
    assert nib.load(f"{out}.nii.gz").shape == SHAPE + (N_FRAMES,)


def test_multi_echo_series_is_refused(tmp_path, capsys):
    folder = write_dicom(synthetic_signal()[..., :4], tmp_path / "me", echo_times_ms=(15.0, 45.0))
    assert main(["convert", "--dicom", str(folder), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "has several echoes (TE [15.0, 45.0] ms, echo numbers [1, 2])" in err and "multi-echo" in err
    assert list(tmp_path.iterdir()) == [folder]


def test_dcm2niix_missing_is_one_line(subject, tmp_path, monkeypatch, capsys):
    """Without the dcm2niix binary: one line that says how to install it."""
    import dcm2niix

    monkeypatch.setattr(dcm2niix, "bin", str(tmp_path / "no-such-binary"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["convert", "--dicom", str(subject["dicom"]), "--out", str(tmp_path / "x")]) == 2
    assert "dcm2niix is not installed: `pip install dcm2niix`" in capsys.readouterr().err
