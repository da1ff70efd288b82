"""The Qt-free planning session the web panels bind to: one MRML scene, the data folder, and the
actions (load a case, segment it in the background, save) built on the Libs' public functions.

It is deliberately thin so the shared panel logic (parameter node + actions + job runner, issue 13)
can replace it: the panels only call the methods below and read plain dicts back.
"""
from __future__ import annotations

import json
from pathlib import Path

from SurgicalAICore.errors import InputError
from SurgicalAICore.image_io import read_image
from SurgicalAICore.resources import models_dir, sample_ct_path
from SurgicalAICore.mrml.bundle import save_scene_bundle
from SurgicalAICore.mrml.segmentations import export_seg_nrrd
from SegmentationAILib.statistics import rows_from_table_node
from SurgicalAICore.mrml.volumes import add_volume_from_sitk, sitk_from_volume_node

from surgicalai.web.jobs import Job
from surgicalai.web.security import IMAGE_SUFFIXES, DataRoot, suffix_of

BUNDLED = "bundled"
RESULTS_FOLDER = "results"


class PlanningSession:
    def __init__(self, scene, data: DataRoot):
        self.scene = scene
        self.data = data
        self.job: Job | None = None
        self.segmentation_node = None

    # -- case ---------------------------------------------------------------------------------------
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

    # -- models -------------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        """The bundled segmentation models, then model folders (with a model.json) in the data folder."""
        found = [{"key": BUNDLED, "title": f"{_model_title(d)} (bundled)"} for d in _seg_models(models_dir())[:1]]
        for card in sorted(self.data.root.glob("**/model.json")):
            if card.resolve().is_relative_to(self.data.root) and _is_seg_card(card):
                rel = card.parent.relative_to(self.data.root).as_posix()
                found.append({"key": rel, "title": f"{_model_title(card.parent)} ({rel})"})
        return found

    def _model_arg(self, key: str):
        if key == BUNDLED:
            return None
        folder = self.data.resolve(key)
        if not (folder / "model.json").is_file():
            raise InputError(f"'{key}' is not a model folder (no model.json).")
        return folder

    # -- segmentation -------------------------------------------------------------------------------
    def start_segmentation(self, volume_id: str, model_key: str, options: dict) -> Job:
        """Segment in a worker thread on a private copy of the volume; the live scene gets the result in
        ``Job.poll`` (server thread), or nothing at all on cancel or error."""
        if self.job is not None and self.job.running:
            raise InputError(f"A {self.job.name} is already running; cancel it or wait.")
        volume = self.scene.GetNodeByID(volume_id) if volume_id else None
        if volume is None:
            raise InputError("Choose a volume to segment first.")
        model = self._model_arg(model_key)
        image, name = sitk_from_volume_node(volume), volume.GetName()  # the only read of the live scene

        def work(progress, cancel):
            # imported in the worker: torch and MONAI take seconds to import, the server must not wait
            from SurgicalAICore.mrml.scene import new_scene
            from SegmentationAILib.scene_segmentation import segment_volume_node

            progress(0.0, "loading the model")
            scratch = new_scene()
            copy = add_volume_from_sitk(scratch, image, name=name)
            return segment_volume_node(scratch, copy, model, options, progress=progress, cancel=cancel)

        def finish(result):
            node = self._adopt(result, volume)
            found = sum(r["voxels"] > 0 for r in self.statistics())
            return f"done: {found} structures in '{node.GetName()}'"

        self.job = Job("segmentation", work, finish).start()
        return self.job

    def _adopt(self, built, volume):
        """Copy a segmentation (and its statistics table) made in a scratch scene into the live scene."""
        from SegmentationAILib.scene_segmentation import STATISTICS_ROLE, statistics_table_of

        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", self.scene.GenerateUniqueName(built.GetName()))
        node.GetSegmentation().DeepCopy(built.GetSegmentation())
        node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetVisibility3D(True)
        table_name = self.scene.GenerateUniqueName(f"{node.GetName()} statistics")
        table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", table_name)
        table.GetTable().DeepCopy(statistics_table_of(built).GetTable())
        node.SetNodeReferenceID(STATISTICS_ROLE, table.GetID())
        self.segmentation_node = node
        return node

    def segments(self) -> list[dict]:
        """Name, colour (hex) and volume of each segment of the current segmentation."""
        if self.segmentation_node is None:
            return []
        volumes = {r["name"]: r["volume_ml"] for r in self.statistics()}
        seg = self.segmentation_node.GetSegmentation()
        out = []
        for i in range(seg.GetNumberOfSegments()):
            s = seg.GetNthSegment(i)
            rgb = "#" + "".join(f"{round(c * 255):02x}" for c in s.GetColor())
            out.append({"id": seg.GetNthSegmentID(i), "name": s.GetName(), "color": rgb,
                        "volume_ml": round(volumes.get(s.GetName(), 0.0), 2)})
        return out

    def statistics(self) -> list[dict]:
        from SegmentationAILib.scene_segmentation import statistics_table_of

        table = statistics_table_of(self.segmentation_node) if self.segmentation_node is not None else None
        return rows_from_table_node(table) if table is not None else []

    # -- saving -------------------------------------------------------------------------------------
    def save_segmentation(self, name: str = "segmentation.seg.nrrd") -> str:
        if self.segmentation_node is None:
            raise InputError("There is no segmentation to save yet.")
        return self._save(name, ".seg.nrrd", lambda p: export_seg_nrrd(self.segmentation_node, p))

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
