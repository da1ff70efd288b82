"""Image input/output: files, DICOM series folders (one series, mixed series), unreadable input, atomic writes."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import check_output_path, read_image, write_image
from SegmentationAILib.synthetic import synthetic_ct


def write_dicom_series(folder, image, series_uid, first_instance=1):
    """Write ``image`` as one DICOM file per slice with the tags a series reader needs."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(first_instance + k),
            "0020|0032": "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0018|0050": str(image.GetSpacing()[2]),
            "0028|0030": f"{image.GetSpacing()[1]}\\{image.GetSpacing()[0]}",
        }
        # image orientation (patient): row direction cosines then column direction cosines
        tags["0020|0037"] = "\\".join(
            str(v) for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])
        )
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"series{series_uid.split('.')[-1]}_{k:03d}.dcm"))
        writer.Execute(slice_)


@pytest.fixture
def small_ct():
    ct, _ = synthetic_ct((16, 12, 6), spacing=(0.8, 0.8, 2.0))
    ct.SetOrigin((-6.0, 4.0, 10.0))
    return ct


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_read_image_files(tmp_path, small_ct, suffix):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(small_ct, str(path))
    image = read_image(path)
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(small_ct))
    assert np.allclose(image.GetOrigin(), small_ct.GetOrigin()) and np.allclose(
        image.GetSpacing(), small_ct.GetSpacing()
    )


def test_read_dicom_series_folder(tmp_path, small_ct):
    write_dicom_series(tmp_path / "dicom", small_ct, "1.2.826.0.1.3680043.2.1125.1.1")
    image = read_image(tmp_path / "dicom")
    assert image.GetSize() == small_ct.GetSize()
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(small_ct))
    assert np.allclose(image.GetOrigin(), small_ct.GetOrigin(), atol=1e-3)
    assert np.allclose(image.GetSpacing(), small_ct.GetSpacing(), atol=1e-3)


def test_dicom_folder_with_mixed_series(tmp_path, small_ct):
    write_dicom_series(tmp_path / "dicom", small_ct, "1.2.826.0.1.3680043.2.1125.1.1")
    write_dicom_series(tmp_path / "dicom", small_ct, "1.2.826.0.1.3680043.2.1125.1.2")
    with pytest.raises(InputError, match="2 DICOM series"):
        read_image(tmp_path / "dicom")
    # choosing one of them works
    image = read_image(tmp_path / "dicom", series_id="1.2.826.0.1.3680043.2.1125.1.2")
    assert image.GetSize() == small_ct.GetSize()


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="No DICOM series"):
        read_image(tmp_path)


def test_missing_corrupt_and_unreadable_files(tmp_path, small_ct):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nothing.nii.gz")
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b this is not an image")
    with pytest.raises(InputError, match="Cannot read image file"):
        read_image(corrupt)
    empty = tmp_path / "empty.nrrd"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_image(empty)
    if os.geteuid() != 0:  # root reads anything; the permission check is then not testable
        locked = tmp_path / "locked.nii.gz"
        sitk.WriteImage(small_ct, str(locked))
        locked.chmod(0)
        with pytest.raises(InputError, match="not readable"):
            read_image(locked)


def test_write_image_is_atomic_and_checks_the_folder(tmp_path, small_ct):
    out = write_image(small_ct, tmp_path / "out.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), sitk.GetArrayFromImage(small_ct))
    with pytest.raises(InputError, match="does not exist"):
        write_image(small_ct, tmp_path / "missing" / "out.nii.gz")
    with pytest.raises(InputError, match="must end in"):
        check_output_path(tmp_path / "out.txt", (".nii.gz",))
    with pytest.raises(InputError, match="is a folder"):
        check_output_path(tmp_path)
