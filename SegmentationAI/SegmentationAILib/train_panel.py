"""The SegmentationAI panel's Train section, Qt-free: cases and settings in a parameter node, training on
:class:`~SegmentationAILib.training.loop.TrainingJob`'s thread, followed by ``poll()``.

Cases are node references (first channel, optional second channel, segmentation), so they are saved
with the scene; they are read into arrays on the caller's thread when training starts.
"""
from __future__ import annotations

import os

from SurgicalAICore.errors import InputError, SurgicalAIError
from SurgicalAICore.panel.choices import Device, Modality
from SurgicalAICore.panel.parameters import Param, ParameterStore

MODULE = "SegmentationAI"

TRAIN_PARAMS = (
    Param("caseVolumes", "nodes", node_class="vtkMRMLScalarVolumeNode"),
    Param("caseSecondVolumes", "nodes", node_class="vtkMRMLScalarVolumeNode"),  # empty, or one per case
    Param("caseSegmentations", "nodes", node_class="vtkMRMLSegmentationNode"),
    Param("modality", Modality, Modality.CT),
    Param("patchSize", int, 64),
    Param("epochs", int, 50),
    Param("stepsPerEpoch", int, 50),
    Param("learningRate", float, 1e-3),
    Param("validationFraction", float, 0.2),
    Param("device", Device, Device.AUTO),
    Param("outputFolder", str, ""),
    Param("finetuneFolder", str, ""),
    Param("resume", bool, False),
    Param("mapping", str, ""),  # "name=segments;..." (see LabelMapping.parse); empty: one class per segment
)


class TrainPanel:
    """State and actions of the Train section on ``scene``."""

    def __init__(self, scene):
        self.scene = scene
        self.params = ParameterStore(scene, MODULE, "Train", TRAIN_PARAMS)
        self.job = None
        self.advanced: dict = {}  # TrainingSettings fields the panel does not show (scripts, tests)
        self.fraction = 0.0
        self.message = ""
        self.epochs: list[dict] = []
        self.model_path: str | None = None
        self.error: str | None = None

    # ---- cases ----
    def cases(self) -> list[tuple[list, object]]:
        """(volumes, segmentation) per case, as the scene holds them."""
        values = self.params.values()
        seconds = values["caseSecondVolumes"]
        pairs = zip(values["caseVolumes"], values["caseSegmentations"], strict=False)
        return [([volume] + ([seconds[i]] if seconds else []), segmentation)
                for i, (volume, segmentation) in enumerate(pairs)]

    def add_case(self, volume, segmentation, second=None) -> None:
        if volume is None or segmentation is None:
            raise InputError("Pick a case volume and its segmentation first.")
        cases = self.cases()
        if cases and (len(cases[0][0]) == 2) != (second is not None):
            raise InputError("Every case needs the same number of image channels as the first one.")
        self.params.update(caseVolumes=[c[0][0] for c in cases] + [volume],
                           caseSecondVolumes=[c[0][1] for c in cases] + [second] if second is not None else [],
                           caseSegmentations=[c[1] for c in cases] + [segmentation])

    def remove_case(self, index: int) -> None:
        cases = self.cases()
        if 0 <= index < len(cases):
            del cases[index]
            self.params.update(caseVolumes=[c[0][0] for c in cases],
                               caseSecondVolumes=[c[0][1] for c in cases if len(c[0]) == 2],
                               caseSegmentations=[c[1] for c in cases])

    def case_labels(self) -> list[str]:
        return [" + ".join(v.GetName() for v in volumes) + f"  |  {segmentation.GetName()}"
                for volumes, segmentation in self.cases()]

    # ---- run ----
    def settings(self):
        from SegmentationAILib.training.settings import TrainingSettings
        from SegmentationAILib.training.transforms import AugmentationSettings

        values = self.params.values()
        patch = values["patchSize"]
        name = os.path.basename(os.path.normpath(values["outputFolder"] or "model"))
        settings = TrainingSettings(
            modality=values["modality"].value, patch_size=[patch, patch, patch], epochs=values["epochs"],
            steps_per_epoch=values["stepsPerEpoch"], learning_rate=values["learningRate"],
            val_fraction=values["validationFraction"], device=values["device"].value,
            augmentation=AugmentationSettings(), name=name, command="3D Slicer SegmentationAI panel, Train section")
        for key, value in self.advanced.items():
            setattr(settings, key, value)
        return settings

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self):
        """Read the cases here (the caller's thread) and train on the job's thread."""
        from SegmentationAILib.cases import case_from_nodes
        from SegmentationAILib.label_mapping import LabelMapping
        from SegmentationAILib.training.job import TrainingJob

        if self.running:
            raise SurgicalAIError("Training is running: stop it first.")
        values = self.params.values()
        if len(self.cases()) < 2:
            raise InputError("Add at least two cases (volume + segmentation) first.")
        if not values["outputFolder"]:
            raise InputError("Choose an output model folder.")
        cases = [case_from_nodes(volumes, segmentation) for volumes, segmentation in self.cases()]
        text = values["mapping"].strip()
        mapping = LabelMapping.parse([t for t in text.split(";") if t.strip()]) if text \
            else LabelMapping.identity(cases)
        self.job = TrainingJob(cases, mapping, values["outputFolder"], self.settings(),
                               init_model=values["finetuneFolder"] or None, resume=values["resume"])
        self.fraction, self.message, self.epochs = 0.0, "Preparing the cases...", []
        self.model_path = self.error = None
        self.job.start()
        return self.job

    def stop(self) -> None:
        if self.running:
            self.job.stop()
            self.message = "Stopping after the current step..."

    def poll(self) -> list[dict]:
        """Events since the last call (call from the GUI thread's timer); updates the state a view shows."""
        if self.job is None:
            return []
        events = self.job.poll()
        for event in events:
            kind = event["kind"]
            if kind == "progress":
                self.fraction, self.message = event["fraction"], event["message"]
            elif kind == "epoch":
                self.epochs.append(event)
                dice = f", validation Dice {event['val_mean_dice']:.3f}" if "val_mean_dice" in event else ""
                self.message = f"Epoch {event['epoch']}: loss {event['train_loss']:.4f}{dice}"
            elif kind == "done":
                self.model_path, self.fraction = event["model_path"], 1.0
                self.message = f"Model written to {event['model_path']}."
            elif kind == "error":
                self.error = "Training stopped; the last finished epoch can be resumed." if event["cancelled"] \
                    else event["message"]
                self.message = self.error
        return events

    def status(self) -> dict:
        return {"running": self.running, "fraction": self.fraction, "message": self.message, "error": self.error,
                "epochs": len(self.epochs), "model_path": self.model_path, "cases": self.case_labels()}

    @property
    def curves_path(self):
        return self.job.curves_path if self.job is not None and self.job.curves_path.is_file() else None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Panel closed, scene closed or application exit: stop the thread and wait for it."""
        if self.running:
            self.job.stop()
            self.job.wait(timeout)
