"""Issue 16: property-based fuzzing (hypothesis) of every parser a user feeds.

The property, for each: a result, or the project's own error with one line; no other exception, no
crash, no hang, and nothing left behind in the input's folder. CI runs a bounded number of examples
per parser; the long run (documented in docs/RELIABILITY.md) sets ``SURGICALAI_FUZZ_EXAMPLES``::

    SURGICALAI_FUZZ_EXAMPLES=100000 python -m pytest -q -p no:cacheprovider Testing/test_fuzz_parsers.py
"""
from __future__ import annotations

import atexit
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from SurgicalAICore.errors import SurgicalAIError

EXAMPLES = int(os.environ.get("SURGICALAI_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 25,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="surgicalai-fuzz-"))
atexit.register(shutil.rmtree, WORK, True)  # the seed files; each example removes its own folder


def _fresh(name: str, data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(dir=WORK))
    path = folder / name
    path.write_bytes(data)
    return path


def result_or_own_error(call, path: Path | None = None):
    """Run ``call()``: a result, or a SurgicalAIError of one non-empty line; the folder is unchanged."""
    before = sorted(os.listdir(path.parent)) if path is not None else None
    try:
        result = call()
    except SurgicalAIError as error:
        text = str(error)
        assert text.strip() and "\n" not in text, repr(text)
        result = None
    if path is not None:
        assert sorted(os.listdir(path.parent)) == before, "a parser left a file behind"
        shutil.rmtree(path.parent, ignore_errors=True)
    return result


@st.composite
def mutated(draw, valid: bytes, max_edits: int = 6):
    """``valid`` with a few bytes overwritten, bytes inserted, and maybe cut short."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, max_edits))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if draw(st.booleans()):
            data[pos:pos + len(chunk)] = chunk
        else:
            data[pos:pos] = chunk
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


# ------------------------------------------------------------------ point clouds, matrices, landmarks
def _valid_ply(binary: bool) -> bytes:
    from SurgicalDepthLib.depth.pointcloud import PointCloud, write_ply

    pts = np.arange(15, dtype=np.float32).reshape(5, 3)
    path = WORK / f"valid_{binary}.ply"
    write_ply(PointCloud(pts, np.zeros((5, 3), np.uint8), pts[:, 2].copy()), path, binary=binary)
    return path.read_bytes()


PLY_SEEDS = None


def _ply_seeds():
    global PLY_SEEDS
    if PLY_SEEDS is None:
        PLY_SEEDS = [_valid_ply(True), _valid_ply(False)]
    return PLY_SEEDS


@FUZZ
@given(st.data())
def test_fuzz_ply(data):
    from SurgicalDepthLib.depth.pointcloud import read_ply

    seed = _ply_seeds()[data.draw(st.integers(0, 1))]
    raw = data.draw(st.one_of(mutated(seed), st.binary(max_size=300)))
    path = _fresh("c.ply", raw)
    cloud = result_or_own_error(lambda: read_ply(path), path)
    if cloud is not None:
        assert cloud.points.ndim == 2 and cloud.points.shape[1] == 3 and len(cloud.colors) == len(cloud.points)


def _valid_npy() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(30, dtype=np.float64).reshape(10, 3))
    return buffer.getvalue()


@FUZZ
@given(st.one_of(mutated(_valid_npy()), st.binary(max_size=200)))
def test_fuzz_npy_cloud(raw):
    from SurgicalDepthLib.registration.files import read_points_file
    from SurgicalDepthLib.registration.icp import check_cloud

    path = _fresh("c.npy", raw)
    cloud = result_or_own_error(lambda: read_points_file(path, "point cloud"), path)
    if cloud is not None:
        result_or_own_error(lambda: check_cloud(cloud))


NUMBER_TEXT = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                                 st.sampled_from(["", ",", ";", "x", "1e999", "-0", "nan", "\t"])),
                       max_size=24).map(" ".join)


@FUZZ
@given(st.lists(NUMBER_TEXT, max_size=6).map("\n".join), st.sampled_from([".txt", ".csv"]))
def test_fuzz_landmark_and_matrix_text_files(text, suffix):
    from SurgicalAICore.validation import check_rigid
    from SurgicalDepthLib.registration.files import read_points_file

    path = _fresh(f"m{suffix}", text.encode())
    points = result_or_own_error(lambda: read_points_file(path, "landmark"), path)
    if points is not None and points.shape == (4, 4):
        result_or_own_error(lambda: check_rigid(points, "start pose"))


@FUZZ
@given(hnp.arrays(np.float64, st.sampled_from([(4, 4), (3, 3), (4, 3), (16,)]),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       st.booleans())
def test_fuzz_4x4_matrix(matrix, scale):
    from SurgicalAICore.validation import check_rigid

    checked = result_or_own_error(lambda: check_rigid(matrix, "matrix", scale=scale))
    if checked is not None:
        rot = checked[:3, :3]
        s = np.linalg.det(rot) ** (1 / 3)
        assert np.all(np.isfinite(checked)) and s > 0
        assert np.allclose(rot.T @ rot / s**2, np.eye(3), atol=0.1)


# ------------------------------------------------------------------ --class mappings
@FUZZ
@given(st.lists(st.one_of(st.text(max_size=30),
                          st.builds(lambda n, a, b: f"{n}={a}-{b}", st.sampled_from(["a", "b c", ""]),
                                    st.integers(0, 10**12), st.integers(0, 10**12)),
                          st.builds(lambda n, s, v: f"{n}={s}:{v}", st.sampled_from(["x", "y"]),
                                    st.text(max_size=5), st.text(alphabet="0123456789,- ", max_size=12))),
                min_size=1, max_size=4))
def test_fuzz_class_mapping(texts):
    from SegmentationAILib.label_mapping import MAX_EXPANDED_RANGE, LabelMapping

    mapping = result_or_own_error(lambda: LabelMapping.parse(texts))
    if mapping is not None:
        assert all(len(c.values) <= MAX_EXPANDED_RANGE * 20 for c in mapping.classes)  # ranges never explode


# ------------------------------------------------------------------ images: NIfTI, NRRD, MHA
def _valid_image(suffix: str) -> bytes:
    import SimpleITK as sitk

    path = WORK / f"valid{suffix}"
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
    image.SetSpacing((0.8, 0.9, 2.5))
    sitk.WriteImage(image, str(path), False)
    return path.read_bytes()


IMAGE_SEEDS: dict[str, bytes] = {}


def _image_seed(suffix: str) -> bytes:
    if suffix not in IMAGE_SEEDS:
        IMAGE_SEEDS[suffix] = _valid_image(".nii" if suffix == ".nii.gz" else suffix)
    return IMAGE_SEEDS[suffix]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
@FUZZ
@given(data=st.data())
def test_fuzz_image_headers(suffix, data):
    from SurgicalAICore.image_io import read_image

    valid = _image_seed(suffix)
    header_end = 352 if suffix.startswith(".nii") else valid.index(b"\n\n" if suffix == ".nrrd" else b"LOCAL\n") + 6
    raw = data.draw(mutated(valid[:header_end], max_edits=4)) + valid[header_end:]
    path = _fresh(f"v{suffix}", gzip.compress(raw) if suffix == ".nii.gz" else raw)
    image = result_or_own_error(lambda: read_image(path), path)
    if image is not None:
        assert image.GetNumberOfPixels() > 0


# ------------------------------------------------------------------ DICOM folders
def _write_dicom_series(folder: Path, n: int, tags: dict, skip: set[int]) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series, study = generate_uid(), generate_uid()
    for i in range(n):
        if i in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"s{i}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.Modality = series, study, "CT"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.0
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2.0 * i], [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber, ds.RescaleSlope, ds.RescaleIntercept = i + 1, 1, -1024
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.PixelData = (np.arange(64, dtype=np.uint16) + i).tobytes()
        ds.save_as(str(folder / f"s{i}.dcm"), enforce_file_format=True)


DICOM_TAGS = st.dictionaries(
    st.sampled_from(["Rows", "Columns", "BitsAllocated", "PixelSpacing", "ImageOrientationPatient",
                     "ImagePositionPatient", "RescaleSlope", "SamplesPerPixel", "SliceThickness"]),
    st.one_of(st.integers(0, 70000), st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=7)),
    max_size=2)


@FUZZ
@given(st.integers(1, 5), DICOM_TAGS, st.sets(st.integers(0, 4), max_size=3))
def test_fuzz_dicom_folder(n, tags, skip):
    from SurgicalAICore.image_io import read_image

    folder = Path(tempfile.mkdtemp(dir=WORK))
    try:
        _write_dicom_series(folder, n, tags, skip)
    except Exception:
        shutil.rmtree(folder)
        return
    before = sorted(os.listdir(folder))
    result_or_own_error(lambda: read_image(folder))
    assert sorted(os.listdir(folder)) == before
    shutil.rmtree(folder)


# ------------------------------------------------------------------ camera files, model cards
CAMERA_KEYS = ["fx", "fy", "cx", "cy", "width", "height", "k1", "k2", "p1", "p2", "k3", "distortion", "model"]
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                        st.lists(st.floats(-1e3, 1e3), max_size=6))


def _camera_json():
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics

    path = WORK / "cam.json"
    CameraIntrinsics(300.0, 300.0, 159.5, 127.5, 320, 256).save_json(path)
    return json.loads(path.read_text())


@FUZZ
@given(st.data())
def test_fuzz_camera_json(data):
    from SurgicalDepthLib.camera.files import load_camera

    card = _camera_json()
    for key in data.draw(st.lists(st.sampled_from(CAMERA_KEYS + list(card)), max_size=3)):
        if data.draw(st.booleans()):
            card[key] = data.draw(JSON_VALUES)
        else:
            card.pop(key, None)
    text = json.dumps(card) if data.draw(st.booleans()) else data.draw(mutated(json.dumps(card).encode())).decode(
        "latin-1")
    path = _fresh("camera.json", text.encode("utf-8", "surrogatepass"))
    camera = result_or_own_error(lambda: load_camera(path), path)
    if camera is not None:
        assert camera.width > 0 and camera.height > 0
        assert np.isfinite([camera.fx, camera.fy, camera.cx, camera.cy]).all()


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".yml", ".xml"]))
def test_fuzz_camera_opencv(raw, suffix):
    from SurgicalDepthLib.camera.files import load_camera

    head = b"%YAML:1.0\n---\n" if suffix == ".yml" else b"<?xml version=\"1.0\"?>\n<opencv_storage>\n"
    path = _fresh(f"camera{suffix}", head + raw)
    result_or_own_error(lambda: load_camera(path), path)


@FUZZ
@given(st.data())
def test_fuzz_model_card(data):
    from SegmentationAILib.seg_model import SEG_SCHEMA
    from SurgicalAICore.model_folder import read_model_folder
    from SegmentationAILib.synthetic import save_tiny_model

    seed_folder = WORK / "tiny_model"
    if not seed_folder.exists():
        save_tiny_model(seed_folder)
    folder = Path(tempfile.mkdtemp(dir=WORK)) / "model"
    shutil.copytree(seed_folder, folder)
    card = json.loads((folder / "model.json").read_text())
    for key in data.draw(st.lists(st.sampled_from([*sorted(card), "weights", "labels", "spacing"]), max_size=3)):
        if data.draw(st.booleans()):
            card[key] = data.draw(JSON_VALUES)
        else:
            card.pop(key, None)
    (folder / "model.json").write_text(json.dumps(card))
    if data.draw(st.booleans()):
        weights = next(p for p in folder.iterdir() if p.suffix == ".pt")
        weights.write_bytes(data.draw(mutated(weights.read_bytes()[:256])))
    result_or_own_error(lambda: read_model_folder(folder, SEG_SCHEMA), folder)


# ------------------------------------------------------------------ video files
def _valid_video(suffix: str, fourcc: str) -> bytes:
    import cv2

    path = WORK / f"valid_{fourcc}{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (32, 24))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc}")
    for i in range(4):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path.read_bytes()


VIDEO_SEEDS: dict[str, bytes] = {}


# the usual codecs, a lossless (FFV1), an uncompressed (IYUV) and a VP8 stream in Matroska
@pytest.mark.parametrize("suffix, fourcc", [(".mp4", "mp4v"), (".avi", "MJPG"), (".mkv", "FFV1"), (".avi", "IYUV"),
                                            (".mkv", "VP80")])
@FUZZ
@given(data=st.data())
def test_fuzz_video_files(suffix, fourcc, data):
    from SurgicalDepthLib.video.sources import open_source

    if fourcc not in VIDEO_SEEDS:
        VIDEO_SEEDS[fourcc] = _valid_video(suffix, fourcc)
    raw = data.draw(st.one_of(mutated(VIDEO_SEEDS[fourcc], max_edits=8), st.binary(max_size=100), st.just(b"")))
    path = _fresh(f"v{suffix}", raw)

    def read_frames():
        source = open_source(path)
        try:
            return [f.rgb.shape for _, f in zip(range(6), source, strict=False)]
        finally:
            source.close()

    shapes = result_or_own_error(read_frames, path)
    if shapes:
        assert all(s[2] == 3 for s in shapes)


# ------------------------------------------------------------------ stereo calibrations
def _stereo_calibration():
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.stereo.calibration_files import StereoCalibration

    cam = CameraIntrinsics(300.0, 300.0, 159.5, 127.5, 320, 256)
    return StereoCalibration(cam, cam, np.eye(3), np.array([-4.5, 0.0, 0.0]))


STEREO_KEYS = ["K1", "D1", "K2", "D2", "R", "T", "R1", "R2", "P1", "P2", "Q", "image_width", "image_height",
               "image_size", "left", "right", "rectification"]
MATRIX_VALUES = st.one_of(JSON_VALUES, hnp.arrays(np.float64, st.sampled_from([(3, 3), (3,), (3, 1), (4, 4), (1, 5)]),
                                                  elements=st.floats(allow_nan=True, allow_infinity=True)
                                                  ).map(lambda a: a.tolist()))


@FUZZ
@given(st.data())
def test_fuzz_stereo_calibration_json(data):
    from SurgicalDepthLib.stereo.calibration_files import load_stereo_calibration

    calib = _stereo_calibration()
    flat = data.draw(st.booleans())
    card = {"image_width": 320, "image_height": 256, "K1": calib.left.K.tolist(), "D1": [0] * 5,
            "K2": calib.right.K.tolist(), "D2": [0] * 5, "R": calib.R.tolist(), "T": calib.T.tolist()} \
        if flat else calib.to_dict()
    for key in data.draw(st.lists(st.sampled_from(STEREO_KEYS), max_size=3)):
        if data.draw(st.booleans()):
            card[key] = data.draw(MATRIX_VALUES)
        else:
            card.pop(key, None)
    text = json.dumps(card)
    if data.draw(st.booleans()):
        text = data.draw(mutated(text.encode())).decode("latin-1")
    path = _fresh("stereo.json", text.encode("utf-8", "surrogatepass"))
    result = result_or_own_error(lambda: load_stereo_calibration(path), path)
    if result is not None:
        assert result.baseline_mm > 0 and np.all(np.isfinite(result.R))


STEREO_YAML = None


def _stereo_yaml(suffix: str) -> bytes:
    from SurgicalDepthLib.stereo.calibration_files import save_stereo_calibration

    path = WORK / f"stereo{suffix}"
    if not path.exists():
        save_stereo_calibration(_stereo_calibration(), path)
    return path.read_bytes()


@FUZZ
@given(st.data(), st.sampled_from([".yml", ".xml"]))
def test_fuzz_stereo_calibration_opencv(data, suffix):
    from SurgicalDepthLib.stereo.calibration_files import load_stereo_calibration

    raw = data.draw(st.one_of(mutated(_stereo_yaml(suffix), max_edits=4), st.binary(max_size=300)))
    path = _fresh(f"stereo{suffix}", raw)
    result_or_own_error(lambda: load_stereo_calibration(path), path)


@FUZZ
@given(st.dictionaries(st.sampled_from(["calib.left.intrinsics.txt", "calib.right.intrinsics.txt",
                                        "calib.left.distortion.txt", "calib.right.distortion.txt", "calib.l2r.txt",
                                        "x_Calibration.txt"]),
                       NUMBER_TEXT, max_size=6),
       st.one_of(st.none(), st.tuples(st.integers(-5, 5000), st.integers(-5, 5000))))
def test_fuzz_stereo_calibration_text_folder(files, size):
    from SurgicalDepthLib.stereo.calibration_files import load_stereo_calibration

    folder = Path(tempfile.mkdtemp(dir=WORK))
    valid = {"calib.left.intrinsics.txt": "300 0 159.5\n0 300 127.5\n0 0 1", "calib.left.distortion.txt": "0 0 0 0 0",
             "calib.l2r.txt": "1 0 0 -4.5\n0 1 0 0\n0 0 1 0\n0 0 0 1", "x_Calibration.txt": "RAT 2 320 256"}
    valid["calib.right.intrinsics.txt"] = valid["calib.left.intrinsics.txt"]
    valid["calib.right.distortion.txt"] = valid["calib.left.distortion.txt"]
    for name, text in {**valid, **files}.items():
        (folder / name).write_text(text)
    before = sorted(os.listdir(folder))
    result_or_own_error(lambda: load_stereo_calibration(folder, size))
    assert sorted(os.listdir(folder)) == before
    shutil.rmtree(folder)


# ------------------------------------------------------------------ sparse-depth references ([u, v, z] per frame)
def _valid_sparse_npz() -> bytes:
    import io

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez_compressed(buffer, **{f"frame{i:04d}": np.c_[rng.uniform(0, 64, (6, 2)), rng.uniform(1, 9, 6)]
                                   for i in range(3)})
    return buffer.getvalue()


SPARSE_ARRAYS = st.dictionaries(
    st.text(alphabet="abcdef0123456789_./", min_size=1, max_size=8),
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.int16, np.uint8, np.bool_, np.complex64]),
               hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)),
    max_size=3)


def _npz_of(arrays: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@FUZZ
@given(st.one_of(mutated(_valid_sparse_npz(), max_edits=6), st.binary(max_size=200), SPARSE_ARRAYS.map(_npz_of)))
def test_fuzz_sparse_depth_references(raw):
    from SurgicalDepthLib.depth.sparse_eval import load_sparse_references

    path = _fresh("sparse.npz", raw)
    refs = result_or_own_error(lambda: load_sparse_references(path), path)
    if refs is not None:
        assert refs and all(r.ndim == 2 and r.shape[1] == 3 and np.isfinite(r).all() for r in refs.values())


# ------------------------------------------------------------------ what the fuzzing found, kept as plain cases
def _stereo_json_with(**changes) -> dict:
    card = _stereo_calibration().to_dict()
    card.update(changes)
    return card


FOUND = {
    # *_Calibration.txt without the width and height: IndexError
    "text folder, empty original": ("folder", {"x_Calibration.txt": ""}),
    "text folder, size inf": ("folder", {"x_Calibration.txt": "RAT 2 inf 256"}),
    # rectification not a mapping: AttributeError
    "json, rectification 1": ("stereo.json", json.dumps(_stereo_json_with(rectification=1))),
    # an image width of 1e999 (JSON Infinity): OverflowError
    "json, flat, width inf": ("stereo.json", '{"image_width": Infinity, "image_height": 256, "K1": [[300, 0, 1], '
                              '[0, 300, 1], [0, 0, 1]], "K2": [[300, 0, 1], [0, 300, 1], [0, 0, 1]], '
                              '"R": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "T": [-4, 0, 0]}'),
    # a YAML whose root is a sequence: cv2.error (isMap() assertion)
    "yaml, root a sequence": ("stereo.yml", "%YAML:1.0\n---\n- 1\n- 2\n"),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_stereo_calibration_cases_found_by_fuzzing_are_one_line(case, tmp_path):
    from SurgicalAICore.errors import InputError
    from SurgicalDepthLib.stereo.calibration_files import load_stereo_calibration

    name, content = FOUND[case]
    if name == "folder":
        for file, text in content.items():
            (tmp_path / file).write_text(text)
        path = tmp_path
    else:
        path = tmp_path / name
        path.write_text(content)
    with pytest.raises(InputError) as error:
        load_stereo_calibration(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("damage", ["local header magic", "cut short", "member cut short"])
def test_damaged_sparse_reference_archives_are_one_line(damage, tmp_path):
    """BadZipFile, EOFError, zlib.error... were raised as themselves (found by fuzzing)."""
    from SurgicalAICore.errors import InputError
    from SurgicalDepthLib.depth.sparse_eval import load_sparse_references

    raw = bytearray(_valid_sparse_npz())
    if damage == "local header magic":
        second = raw.index(b"PK\x03\x04", 4)
        raw[second + 1] = 0
    elif damage == "cut short":
        raw = raw[: len(raw) // 2]
    else:  # the first member's compressed bytes overwritten, the directory intact
        raw[60:90] = b"\xff" * 30
    path = tmp_path / "sparse.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="sparse references"):
        load_sparse_references(path)
    assert os.listdir(tmp_path) == ["sparse.npz"]
