"""Standard terminology: SNOMED-CT codes for segment names, written into .seg.nrrd (read back by
slicerio and by Slicer's own storage), and codes given by a model card."""
import json

import numpy as np
import pytest
import slicerio

from SurgicalAICore.errors import ModelError
from SegmentationAILib.seg_model import default_model_path, validate_seg_card
from SurgicalAICore.mrml.segmentations import export_seg_nrrd, new_segmentation_node, read_seg_nrrd
from SurgicalAICore.terminology import LEFT, RIGHT, color_for, lookup, slicer_terminology_string


@pytest.mark.parametrize(("name", "code", "side"), [
    ("liver", "10200004", None), ("Spleen", "78961009", None), ("stomach", "69695003", None),
    ("aorta", "15825003", None), ("kidney_left", "64033007", LEFT), ("Kidney (right)", "64033007", RIGHT),
    ("LeftParotid", "45289007", LEFT), ("SpinalCord", "2748008", None), ("Brainstem", "15926001", None),
    ("vertebrae", "421060004", None), ("whole_tumour", "108369006", None), ("gall bladder", "28231008", None),
])
def test_lookup_by_name(name, code, side):
    entry = lookup(name)
    assert entry["type"][1] == code and entry["type"][0] == "SCT"
    assert entry.get("modifier") == side


def test_unknown_names_get_no_code_but_a_colour():
    assert lookup("my_structure") is None
    assert lookup("left") is None
    colours = {tuple(color_for("thing", v)) for v in range(1, 8)}
    assert len(colours) == 7 and all(0 <= c <= 1 for rgb in colours for c in rgb)


def test_every_structure_of_the_bundled_model_is_coded():
    card = json.loads((default_model_path() / "model.json").read_text())
    missing = [e["name"] for e in card["labels"] if lookup(e["name"]) is None]
    assert not missing


def _labels():
    return [{"value": 1, "name": "liver", "color": [0.9, 0.5, 0.4]},
            {"value": 2, "name": "kidney_left", "color": [0.7, 0.4, 0.3]},
            {"value": 3, "name": "mystery", "color": [0.1, 0.2, 0.3]},
            {"value": 4, "name": "lesion A", "color": [0.2, 0.8, 0.2],
             "terminology": {"category": ["SCT", "49755003", "Morphologically Altered Structure"],
                             "type": ["SCT", "4147007", "Mass"]}}]


def test_seg_nrrd_carries_codes_that_slicerio_reads(tmp_path):
    array = np.zeros((6, 8, 10), np.uint8)
    array[1:3, 2:5, 2:6], array[3:5, 2:4, 6:9], array[4, 6, 1], array[5, 1, 1] = 1, 2, 3, 4
    node = new_segmentation_node(array, np.diag([2.0, 2.0, 3.0, 1.0]), _labels(), closed_surface=False)
    path = export_seg_nrrd(node, tmp_path / "coded.seg.nrrd")
    segments = {s["name"]: s for s in slicerio.read_segmentation(str(path), skip_voxels=True)["segments"]}
    liver = segments["liver"]["terminology"]
    assert liver["category"] == ["SCT", "123037004", "Anatomical Structure"]
    assert liver["type"] == ["SCT", "10200004", "Liver"] and "typeModifier" not in liver
    kidney = segments["kidney_left"]["terminology"]
    assert kidney["type"] == ["SCT", "64033007", "Kidney"] and kidney["typeModifier"] == ["SCT", "7771000", "Left"]
    assert segments["lesion A"]["terminology"]["type"] == ["SCT", "4147007", "Mass"]  # the card's own code
    # no code invented for an unknown name: absent, or Slicer's generic default "Tissue"
    assert segments["mystery"].get("terminology", {}).get("type", ["", "", ""])[2] in ("", "Tissue")
    again = read_seg_nrrd(path).GetSegmentation().GetSegment("liver")
    assert "SCT^10200004^Liver" in again.GetTerminology()


def test_card_terminology_is_checked():
    from SegmentationAILib.synthetic import tiny_card

    card = {**tiny_card(), "format_version": 1, "weights": "model.pt", "weights_format": "state_dict"}
    card["labels"][0]["terminology"] = {"category": ["SCT", "123037004", "Anatomical Structure"],
                                        "type": ["SCT", "10200004", "Liver"]}
    validate_seg_card(card)
    card["labels"][0]["terminology"] = {"type": ["SCT", "10200004"]}
    with pytest.raises(ModelError, match="terminology"):
        validate_seg_card(card)


def test_terminology_string_matches_slicers_format():
    text = slicer_terminology_string(lookup("kidney_right"))
    assert text == ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical "
                    "Structure~SCT^64033007^Kidney~SCT^24028007^Right~Anatomic codes - DICOM master list~^^~^^")
