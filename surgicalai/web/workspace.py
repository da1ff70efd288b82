"""What the web face adds over the shared panel logic: the data folder clients work in. Cases (image files
and DICOM folders, the sample CT) become volume nodes, model folders and videos in it are offered as
choices, and saves land in its ``results/`` folder; every path a client names goes through
:class:`~surgicalai.web.security.DataRoot`, which refuses those that leave the folder."""
from __future__ import annotations

import json
from pathlib import Path

from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import read_image
from SurgicalAICore.mrml.bundle import save_scene_bundle
from SurgicalAICore.mrml.segmentations import export_seg_nrrd
from SurgicalAICore.mrml.volumes import add_volume_from_sitk
from SurgicalAICore.resources import models_dir, sample_ct_path

from surgicalai.web.security import FRAME_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, DataRoot, suffix_of

BUNDLED = "bundled"
RESULTS_FOLDER = "results"
MAX_FRAMES = 200  # a shared server: one client cannot queue hours of depth


class Workspace:
    def __init__(self, scene, data: DataRoot):
        self.scene = scene
        self.data = data

    # -- cases --------------------------------------------------------------------------------------
    def load_sample(self):
        return self._add_volume(read_image(sample_ct_path()), "Sample CT")

    def load_case(self, relative: str):
        """A volume node from an image file or DICOM folder in the data folder; the scene changes only
        once the image was read completely."""
        path = self.data.resolve(relative)
        if path.is_file() and not suffix_of(path.name, IMAGE_SUFFIXES):
            raise InputError(f"'{relative}' is not a CT/MRI image ({', '.join(IMAGE_SUFFIXES)} or a DICOM folder).")
        image = read_image(path)
        if image.GetDimension() != 3:
            raise InputError(f"'{relative}' is not a 3-D image.")
        return self._add_volume(image, _case_name(path))

    def _add_volume(self, image, name: str):
        return add_volume_from_sitk(self.scene, image, name=self.scene.GenerateUniqueName(name))

    def volumes(self) -> list[dict]:
        nodes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        return [{"id": n.GetID(), "name": n.GetName()} for n in nodes if not n.IsA("vtkMRMLLabelMapVolumeNode")
                and not n.GetHideFromEditors()]

    # -- choices in the data folder -----------------------------------------------------------------
    def models(self) -> list[dict]:
        """The bundled segmentation model, then model folders (with a model.json) in the data folder."""
        found = [{"key": BUNDLED, "title": f"{_model_title(d)} (bundled)"} for d in _seg_models(models_dir())[:1]]
        for card in sorted(self.data.root.glob("**/model.json")):
            if card.resolve().is_relative_to(self.data.root) and _is_seg_card(card):
                rel = card.parent.relative_to(self.data.root).as_posix()
                found.append({"key": rel, "title": f"{_model_title(card.parent)} ({rel})"})
        return found

    def model_folder(self, key: str) -> str:
        """The absolute folder of the data folder's model ``key`` (confined to the data folder)."""
        folder = self.data.resolve(key)
        if not (folder / "model.json").is_file():
            raise InputError(f"'{key}' is not a model folder (no model.json).")
        return str(folder)

    def model_key(self, folder: str) -> str | None:
        """The choice a model folder path is shown as (None: outside the data folder)."""
        try:
            return Path(folder).resolve().relative_to(self.data.root).as_posix()
        except ValueError:
            return None

    def video_sources(self) -> list[str]:
        """Videos, and folders holding frames, in the data folder."""
        return [e["path"] for e in self.data.listing(VIDEO_SUFFIXES + FRAME_SUFFIXES)
                if (e["kind"] == "file" and suffix_of(e["path"], VIDEO_SUFFIXES))
                or (e["kind"] == "folder" and any(suffix_of(p.name, FRAME_SUFFIXES)
                                                  for p in self.data.resolve(e["path"]).iterdir()))]

    def depth_source(self, relative: str | None, frames) -> dict:
        """The depth panel's source settings for a video or frame folder of the data folder."""
        if not relative:
            raise InputError("Choose a video or a frame folder first.")
        path = self.data.resolve(relative)
        if path.is_file() and not suffix_of(path.name, VIDEO_SUFFIXES):
            raise InputError(f"'{relative}' is not a video ({', '.join(VIDEO_SUFFIXES)}) or a frame folder.")
        if not 1 <= int(frames or 0) <= MAX_FRAMES:
            raise InputError(f"Frames must be between 1 and {MAX_FRAMES}.")
        if path.is_file():
            return {"sourceType": "file", "videoFile": str(path), "maxFrames": int(frames)}
        return {"sourceType": "folder", "frameFolder": str(path), "maxFrames": int(frames)}

    # -- saving -------------------------------------------------------------------------------------
    def save_segmentation(self, node, name: str = "segmentation.seg.nrrd") -> str:
        if node is None:
            raise InputError("There is no segmentation to save yet.")
        return self._save(name, ".seg.nrrd", lambda p: export_seg_nrrd(node, p))

    def save_scene(self, name: str = "scene.mrb") -> str:
        return self._save(name, ".mrb", lambda p: save_scene_bundle(self.scene, p))

    def _save(self, name: str, suffix: str, write) -> str:
        if "/" in name or "\\" in name or not name.endswith(suffix) or name.startswith("."):
            raise InputError(f"Save refused: '{name}' must be a plain file name ending in {suffix}.")
        folder = self.data.resolve(RESULTS_FOLDER, must_exist=False)
        folder.mkdir(exist_ok=True)
        path = self.data.resolve(f"{RESULTS_FOLDER}/{name}", must_exist=False)
        write(path)
        return path.relative_to(self.data.root).as_posix()


def _case_name(path: Path) -> str:
    suffix = suffix_of(path.name, IMAGE_SUFFIXES)
    return path.name[: -len(suffix)] if suffix else path.name


def _is_seg_card(card: Path) -> bool:
    try:
        return "labels" in json.loads(card.read_text())
    except (OSError, ValueError):
        return False


def _seg_models(root: Path) -> list[Path]:
    return [d for d in sorted(root.iterdir()) if (d / "model.json").is_file() and _is_seg_card(d / "model.json")]


def _model_title(folder: Path) -> str:
    try:
        return json.loads((folder / "model.json").read_text()).get("name", folder.name)
    except (OSError, ValueError):
        return folder.name
