"""The SegmentationAI panel's Segment section, Qt-free: settings in a parameter node, Apply/Cancel as a job.

The Slicer face and the web face bind to this class; pytest and the module's self-test drive it on a
real scene. The volume is read on the caller's thread, the model is loaded and run on the job's worker
thread, and the segmentation is added to the scene by ``poll()`` on the caller's thread, so the GUI stays
live, and a cancelled or failed run leaves the scene as it was.
"""
from __future__ import annotations

from SurgicalAICore.errors import InputError
from SurgicalAICore.panel.choices import Device, ModelChoice
from SurgicalAICore.panel.jobs import JobRunner
from SurgicalAICore.panel.parameters import Param, ParameterStore
from SurgicalAICore.progress import Progress

MODULE = "SegmentationAI"

SEGMENT_PARAMS = (
    Param("inputVolume", "node", node_class="vtkMRMLScalarVolumeNode"),
    Param("outputSegmentation", "node", node_class="vtkMRMLSegmentationNode"),
    Param("inputSequence", "node", node_class="vtkMRMLSequenceNode"),
    Param("model", ModelChoice, ModelChoice.BUNDLED),
    Param("modelFolder", str, ""),
    Param("device", Device, Device.AUTO),
    Param("tta", bool, True),
    Param("clahe", bool, False),
    Param("denoise", bool, False),
)


class SegmentPanel:
    """State and actions of the Segment section on ``scene``."""

    def __init__(self, scene):
        self.scene = scene
        self.params = ParameterStore(scene, MODULE, "Segment", SEGMENT_PARAMS)
        self.job = JobRunner()
        self.notes: list[str] = []  # warnings the work raised (shown by the view once the job is done)
        self._models: dict = {}  # loaded models by (folder, device): a second Apply does not reload

    # ---- what a view shows ----
    def model_path(self) -> str | None:
        if self.params.get("model") is ModelChoice.BUNDLED:
            return None
        return self.params.get("modelFolder") or ""

    def model_summary(self) -> str:
        from SegmentationAILib.seg_model import model_summary

        path = self.model_path()
        if path == "":
            return "Choose a model folder."
        try:
            return model_summary(path)
        except InputError as error:  # ModelError is an InputError: one line for the view
            return str(error)

    @property
    def can_apply(self) -> bool:
        return not self.job.running and self.params.get("inputVolume") is not None

    @property
    def can_apply_sequence(self) -> bool:
        return not self.job.running and self.params.get("inputSequence") is not None

    @property
    def running(self) -> bool:
        return self.job.running

    # ---- actions ----
    def _chosen_model_path(self) -> str | None:
        path = self.model_path()
        if path == "":
            raise InputError("Choose a model folder (or the bundled model).")
        return path

    @staticmethod
    def _options(values) -> dict:
        return {"device": values["device"].value, "tta": values["tta"], "clahe": values["clahe"],
                "denoise": values["denoise"]}

    def apply(self):
        """Start segmenting; returns the job's cancel token. ``poll()`` adds the result to the scene."""
        from SegmentationAILib.scene_segmentation import read_input

        values = self.params.values()
        volume, output = values["inputVolume"], values["outputSegmentation"]
        path = self._chosen_model_path()
        image = read_input(volume, output)  # the only scene read, here on the caller's thread
        name = f"{volume.GetName()} segmentation"
        options = self._options(values)
        self.notes = []
        return self.job.start(lambda progress, cancel: self._work(image, path, options, name, progress, cancel),
                              lambda built: self._commit(built, volume, output), name="Segmentation")

    def apply_sequence(self):
        """Segment every item of the ``inputSequence``; ``poll()`` adds one segmentation sequence and a table of
        volumes per item, or nothing if cancelled or any item fails."""
        from SegmentationAILib.sequence_segmentation import read_sequence

        values = self.params.values()
        sequence = values["inputSequence"]
        path = self._chosen_model_path()
        items = read_sequence(sequence)  # the scene read, on the caller's thread
        name = f"{sequence.GetName()} segmentation"
        options = self._options(values)
        self.notes = []
        return self.job.start(lambda progress, cancel: self._work_items(items, path, options, name, progress, cancel),
                              lambda results: self._commit_items(results, sequence, name),
                              name="Sequence segmentation")

    def _work_items(self, items, path, options, name, progress, cancel):
        from SegmentationAILib.segmenter import SegmentationOptions
        from SegmentationAILib.sequence_segmentation import segment_items

        prog = Progress(progress, cancel)
        prog.step(0.0, "loading the model")
        opts = SegmentationOptions.of(options)
        return segment_items(items, [self._model(path, opts.device)], opts, prog, name, self.notes.append)

    def _commit_items(self, results, sequence, name):
        from SegmentationAILib.sequence_segmentation import commit_sequence

        node = commit_sequence(self.scene, sequence, results, name)
        self.job.message = f"Done: '{node.GetName()}', {len(results)} items segmented."
        return node

    def _work(self, image, path, options, name, progress, cancel):
        from SegmentationAILib.scene_segmentation import compute_segmentation
        from SegmentationAILib.segmenter import SegmentationOptions

        prog = Progress(progress, cancel)
        prog.step(0.0, "loading the model")
        opts = SegmentationOptions.of(options)
        return compute_segmentation(image, [self._model(path, opts.device)], opts, prog, name, self.notes.append)

    def _model(self, path, device):
        from SegmentationAILib.seg_model import load_segmentation_model

        key = (str(path), device)
        if key not in self._models:
            self._models = {key: load_segmentation_model(path, device=device)}
        return self._models[key]

    def _commit(self, built, volume, output):
        from SegmentationAILib.scene_segmentation import commit_segmentation

        if volume.GetScene() is not self.scene or (output is not None and output.GetScene() is not self.scene):
            raise InputError("The input or output node left the scene while segmenting; nothing was added.")
        segmentation, rows = built
        node = commit_segmentation(self.scene, segmentation, rows, volume, output)
        self.params.set("outputSegmentation", node)
        found = sum(r["voxels"] > 0 for r in rows)
        self.job.message = f"Done: '{node.GetName()}', {found} of {len(rows)} structures found."
        return node

    def segments(self) -> list[dict]:
        """The output segmentation's segments for a view's table: id, name, colour (``#rrggbb``) and volume
        (mL, from its statistics table; 0 where it has none)."""
        from SegmentationAILib.scene_segmentation import statistics_table_of
        from SegmentationAILib.statistics import rows_from_table_node

        node = self.params.get("outputSegmentation")
        if node is None:
            return []
        table = statistics_table_of(node)
        volumes = {r["name"]: r["volume_ml"] for r in rows_from_table_node(table)} if table is not None else {}
        seg = node.GetSegmentation()
        rows = []
        for i in range(seg.GetNumberOfSegments()):
            segment = seg.GetNthSegment(i)
            colour = "#" + "".join(f"{round(c * 255):02x}" for c in segment.GetColor())
            rows.append({"id": seg.GetNthSegmentID(i), "name": segment.GetName(), "color": colour,
                         "volume_ml": round(volumes.get(segment.GetName(), 0.0), 2)})
        return rows

    def status(self) -> dict:
        return {**self.job.status(), "can_apply": self.can_apply, "can_apply_sequence": self.can_apply_sequence,
                "notes": list(self.notes)}

    def cancel(self) -> None:
        self.job.cancel()

    def poll(self) -> bool:
        return self.job.poll()

    def shutdown(self) -> None:
        self.job.shutdown()
