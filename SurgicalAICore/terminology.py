"""Standard terminology for segments: SNOMED-CT category/type (and left/right modifier) codes.

Slicer's terminology module and DICOM SEG describe a segment by a coded category (e.g.
"Anatomical Structure") and type (e.g. "Liver"), optionally with a modifier ("Left"). A model card
may give them per label (``"terminology": {"category": [...], "type": [...], "modifier": [...]}``,
each ``[scheme, code, meaning]``); otherwise they are looked up here by the label's name, which
covers the structures the bundled model and the common public models (TotalSegmentator, the
MONAI model zoo, OpenKBP, BraTS) name. Codes and colours follow Slicer's "General Anatomy" list.
"""
from __future__ import annotations

import colorsys
import re
from collections.abc import Mapping, Sequence
from typing import Any

from SurgicalAICore.errors import ModelError

Code = tuple[str, str, str]  # (coding scheme, code value, code meaning)

CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
ANATOMY: Code = ("SCT", "123037004", "Anatomical Structure")
ALTERED: Code = ("SCT", "49755003", "Morphologically Altered Structure")
LEFT: Code = ("SCT", "7771000", "Left")
RIGHT: Code = ("SCT", "24028007", "Right")

# name -> (category, type, colour 0..255)
_TABLE: dict[str, tuple[Code, Code, tuple[int, int, int]]] = {
    "liver": (ANATOMY, ("SCT", "10200004", "Liver"), (221, 130, 101)),
    "spleen": (ANATOMY, ("SCT", "78961009", "Spleen"), (157, 108, 162)),
    "stomach": (ANATOMY, ("SCT", "69695003", "Stomach"), (216, 132, 105)),
    "aorta": (ANATOMY, ("SCT", "15825003", "Aorta"), (224, 97, 76)),
    "kidney": (ANATOMY, ("SCT", "64033007", "Kidney"), (185, 102, 83)),
    "pancreas": (ANATOMY, ("SCT", "15776009", "Pancreas"), (249, 180, 111)),
    "gallbladder": (ANATOMY, ("SCT", "28231008", "Gallbladder"), (139, 150, 98)),
    "esophagus": (ANATOMY, ("SCT", "32849002", "Esophagus"), (211, 171, 143)),
    "inferior_vena_cava": (ANATOMY, ("SCT", "64131007", "Inferior vena cava"), (0, 151, 206)),
    "portal_vein": (ANATOMY, ("SCT", "32764006", "Portal vein"), (0, 151, 206)),
    "adrenal_gland": (ANATOMY, ("SCT", "23451007", "Adrenal gland"), (244, 186, 150)),
    "duodenum": (ANATOMY, ("SCT", "38848004", "Duodenum"), (255, 253, 229)),
    "small_intestine": (ANATOMY, ("SCT", "30315005", "Small intestine"), (205, 167, 142)),
    "colon": (ANATOMY, ("SCT", "71854001", "Colon"), (204, 168, 143)),
    "rectum": (ANATOMY, ("SCT", "34402009", "Rectum"), (224, 194, 118)),
    "urinary_bladder": (ANATOMY, ("SCT", "89837001", "Urinary bladder"), (222, 154, 132)),
    "prostate": (ANATOMY, ("SCT", "41216001", "Prostate"), (230, 158, 140)),
    "heart": (ANATOMY, ("SCT", "80891009", "Heart"), (206, 110, 84)),
    "lung": (ANATOMY, ("SCT", "39607008", "Lung"), (197, 165, 145)),
    "trachea": (ANATOMY, ("SCT", "44567001", "Trachea"), (182, 228, 255)),
    "vertebral_column": (ANATOMY, ("SCT", "421060004", "Vertebral column"), (241, 213, 144)),
    "bone": (ANATOMY, ("SCT", "272673000", "Bone"), (241, 214, 145)),
    "brain": (ANATOMY, ("SCT", "12738006", "Brain"), (250, 250, 225)),
    "brainstem": (ANATOMY, ("SCT", "15926001", "Brainstem"), (241, 214, 145)),
    "spinal_cord": (ANATOMY, ("SCT", "2748008", "Spinal cord"), (244, 214, 49)),
    "parotid_gland": (ANATOMY, ("SCT", "45289007", "Parotid gland"), (243, 172, 147)),
    "mandible": (ANATOMY, ("SCT", "91609006", "Mandible"), (222, 198, 101)),
    "larynx": (ANATOMY, ("SCT", "4596009", "Larynx"), (137, 186, 178)),
    "tumor": (ALTERED, ("SCT", "108369006", "Neoplasm"), (128, 174, 128)),
    "edema": (ALTERED, ("SCT", "79654002", "Edema"), (139, 186, 200)),
    "necrosis": (ALTERED, ("SCT", "6574001", "Necrosis"), (216, 101, 79)),
}

_SYNONYMS = {
    "oesophagus": "esophagus", "gall_bladder": "gallbladder", "ivc": "inferior_vena_cava",
    "postcava": "inferior_vena_cava", "vena_cava_inferior": "inferior_vena_cava", "bladder": "urinary_bladder",
    "portal_vein_and_splenic_vein": "portal_vein", "vertebrae": "vertebral_column", "spine": "vertebral_column",
    "brain_stem": "brainstem", "spinalcord": "spinal_cord", "cord": "spinal_cord", "parotid": "parotid_gland",
    "adrenal": "adrenal_gland", "tumour": "tumor", "whole_tumour": "tumor", "whole_tumor": "tumor",
    "tumor_core": "tumor", "tumour_core": "tumor", "enhancing_tumour": "tumor", "enhancing_tumor": "tumor",
    "neoplasm": "tumor", "lesion": "tumor", "oedema": "edema", "lung_left": "lung", "heart_myocardium": "heart",
}


def _words(name: str) -> str:
    """'LeftParotid', 'kidney-left', 'Spinal Cord' -> 'left_parotid', 'kidney_left', 'spinal_cord'."""
    split = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")


def lookup(name: str) -> dict[str, Code] | None:
    """SNOMED-CT category, type and side modifier for a structure name, or None if unknown."""
    words = _words(name).split("_")
    side = None
    for word, code in (("left", LEFT), ("l", LEFT), ("right", RIGHT), ("r", RIGHT)):
        if len(words) > 1 and word in (words[0], words[-1]):
            side = code
            words = words[1:] if words[0] == word else words[:-1]
            break
    key = "_".join(words)
    key = _SYNONYMS.get(key, key)
    if key not in _TABLE:
        key = _SYNONYMS.get(key.rstrip("s"), key.rstrip("s"))
    if key not in _TABLE:
        return None
    category, kind, _ = _TABLE[key]
    entry = {"category": category, "type": kind}
    if side is not None:
        entry["modifier"] = side
    return entry


def terminology_of(label: Mapping[str, Any]) -> dict[str, Code] | None:
    """The label's own terminology from the model card, else the table's; None if neither knows it."""
    given = label.get("terminology")
    if given:
        return {k: tuple(str(x) for x in v) for k, v in given.items()}
    return lookup(str(label["name"]))


def slicer_terminology_string(entry: Mapping[str, Sequence[str]]) -> str:
    """The ``TerminologyEntry`` tag Slicer stores in a segment (and in ``.seg.nrrd``)."""
    modifier = "^".join(entry.get("modifier", ("", "", "")))
    return "~".join([CONTEXT, "^".join(entry["category"]), "^".join(entry["type"]), modifier,
                     ANATOMIC_CONTEXT, "^^", "^^"])


def color_for(name: str, value: int) -> list[float]:
    """Slicer's colour for a known structure, else a distinct colour from the label value."""
    words = [w for w in _words(name).split("_") if w not in ("left", "right", "l", "r")]
    key = _SYNONYMS.get("_".join(words), "_".join(words))
    if key in _TABLE:
        return [round(c / 255.0, 4) for c in _TABLE[key][2]]
    hue = (0.61803398875 * int(value)) % 1.0  # golden-ratio steps keep neighbouring labels apart
    return [round(c, 4) for c in colorsys.hsv_to_rgb(hue, 0.55, 0.9)]


def check_terminology(entry: Any, where: Any) -> None:
    """A card's per-label terminology: category and type (and optional modifier), each [scheme, code, meaning]."""
    if not isinstance(entry, dict) or not {"category", "type"} <= set(entry) or set(entry) - {
            "category", "type", "modifier"}:
        raise ModelError(f"Model card {where}: terminology must be {{category, type[, modifier]}}.")
    for key, code in entry.items():
        if (not isinstance(code, list) or len(code) != 3 or not all(isinstance(c, str) and c for c in code)
                or any(ch in "".join(code) for ch in "~^|")):
            raise ModelError(f"Model card {where}: terminology {key} must be [scheme, code, meaning] "
                             "(non-empty text without ~ ^ |).")


def check_label_names(names: Sequence[str], where: Any) -> None:
    if any(not str(n).strip() for n in names) or len(set(names)) != len(names):
        raise ModelError(f"{where}: label names must be non-empty and unique.")
