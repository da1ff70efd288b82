"""DICOM SEG export with highdicom: segments coded with SNOMED-CT, masks on the source series' frames."""
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from SegmentationAILib.dicom_seg import write_dicom_seg
from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import read_image
from SegmentationAILib.synthetic import synthetic_ct
from test_seg_io import write_dicom_series

hd = pytest.importorskip("highdicom", reason="highdicom (a dependency in pyproject) is not installed")

LABELS = [{"value": 1, "name": "liver", "color": [0.87, 0.51, 0.4]},
          {"value": 3, "name": "kidney_right", "color": [0.7, 0.4, 0.3]},
          {"value": 2, "name": "mystery", "color": [0.1, 0.2, 0.3]}]


def test_dicom_seg_round_trip(tmp_path):
    ct, _ = synthetic_ct((16, 12, 6), spacing=(0.8, 0.8, 2.0))
    ct = sitk.Cast(ct, sitk.sitkInt16)
    write_dicom_series(tmp_path / "dicom", ct, "1.2.826.0.1.3680043.2.1125.1.7")
    for f in (tmp_path / "dicom").iterdir():  # a scanner always writes the frame of reference
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.1.8"
        ds.save_as(f)
    image = read_image(tmp_path / "dicom")
    labels = np.zeros(sitk.GetArrayFromImage(image).shape, np.uint8)
    labels[1:4, 2:6, 3:9], labels[4, 7:10, 10:14], labels[5, 0, 0] = 1, 3, 2
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(image)
    path = write_dicom_seg(label_image, LABELS, tmp_path / "dicom", tmp_path / "seg.dcm", "tiny", "1.0")
    seg = hd.seg.segread(str(path))
    descriptions = {d.SegmentLabel: d for d in seg.SegmentSequence}
    liver = descriptions["liver"].SegmentedPropertyTypeCodeSequence[0]
    assert (liver.CodeValue, liver.CodingSchemeDesignator, liver.CodeMeaning) == ("10200004", "SCT", "Liver")
    kidney = descriptions["kidney_right"].SegmentedPropertyTypeCodeSequence[0]
    assert kidney.CodeValue == "64033007"
    assert kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"
    assert descriptions["mystery"].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Tissue"
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "dicom"))
    source_uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    masks = seg.get_pixels_by_source_instance(source_sop_instance_uids=source_uids,
                                              segment_numbers=[1, 2, 3], assert_missing_frames_are_empty=True)
    # segment numbers follow the label values in order: liver 1, mystery 2, kidney_right 3
    for number, value in ((1, 1), (2, 2), (3, 3)):
        assert np.array_equal(masks[..., number - 1].astype(bool), labels == value)


def test_dicom_seg_refuses_incomplete_series_and_non_dicom(tmp_path):
    ct, _ = synthetic_ct((8, 8, 4), spacing=(1.0, 1.0, 2.0))
    write_dicom_series(tmp_path / "dicom", sitk.Cast(ct, sitk.sitkInt16), "1.2.826.0.1.3680043.2.1125.1.9")
    image = read_image(tmp_path / "dicom")
    with pytest.raises(InputError, match="Frame Of Reference"):
        write_dicom_seg(sitk.Cast(image * 0, sitk.sitkUInt8), LABELS, tmp_path / "dicom", tmp_path / "seg.dcm")
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    with pytest.raises(InputError, match="one DICOM series"):
        write_dicom_seg(image, LABELS, tmp_path, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_cli_writes_dicom_seg_for_a_dicom_input_only(tmp_path, capsys):
    from SegmentationAILib.synthetic import save_tiny_model
    from surgicalai.cli import main

    model = save_tiny_model(tmp_path / "tiny").path
    ct, _ = synthetic_ct((24, 20, 8), spacing=(2.0, 2.0, 4.0))
    write_dicom_series(tmp_path / "dicom", sitk.Cast(ct, sitk.sitkInt16), "1.2.826.0.1.3680043.2.1125.1.11")
    for f in (tmp_path / "dicom").iterdir():
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.1.12"
        ds.save_as(f)
    args = ["--model", str(model), "--no-tta", "--quiet"]
    assert main(["segment", str(tmp_path / "dicom"), "-o", str(tmp_path / "out.dcm"), *args]) == 0
    seg = hd.seg.segread(str(tmp_path / "out.dcm"))
    assert [d.SegmentLabel for d in seg.SegmentSequence][:2] == ["liver", "spleen"]
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    capsys.readouterr()
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "nifti.dcm"), *args]) == 2
    assert "only for a DICOM series" in capsys.readouterr().err and not (tmp_path / "nifti.dcm").exists()
