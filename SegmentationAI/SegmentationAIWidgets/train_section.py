"""The "Train" section of the SegmentationAI panel (Qt glue only).

Cases are picked from the scene (volume(s) + segmentation), read on the main thread, and the
training (``SegmentationAILib.training.TrainingJob``) runs on a Python thread; a QTimer polls its
events so the GUI never freezes. Stop cancels; the last finished epoch stays resumable.
"""
import os

import qt
import slicer

from SegmentationAILib.cases import case_from_nodes
from SurgicalAICore.errors import SurgicalAIError
from SegmentationAILib.label_mapping import LabelMapping
from SegmentationAILib.training.transforms import AugmentationSettings
from SegmentationAILib.training.job import TrainingJob
from SegmentationAILib.training.settings import TrainingSettings

POLL_MS = 250


class TrainSection:
    """Collapsible Train section added to ``parentLayout``; ``logic`` is the module logic (unused state)."""

    def __init__(self, parentLayout, logic=None):
        self.logic = logic
        self.job = None
        self.cases = []  # (volume node ids, segmentation node id)
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "Resources", "UI", "SegmentationAITrain.ui")
        self.widget = slicer.util.loadUI(path)
        self.ui = slicer.util.childWidgetVariables(self.widget)
        self.widget.setMRMLScene(slicer.mrmlScene)
        parentLayout.addWidget(self.widget)
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.onPoll)
        self.ui.addCaseButton.connect("clicked()", self.onAddCase)
        self.ui.removeCaseButton.connect("clicked()", self.onRemoveCase)
        self.ui.startTrainingButton.connect("clicked()", self.onStartStop)

    def cleanup(self):
        self.timer.stop()
        if self.job is not None and self.job.running:
            self.job.stop()

    # cases ---------------------------------------------------------------------------------
    def onAddCase(self):
        volume = self.ui.caseVolumeSelector.currentNode()
        second = self.ui.caseSecondVolumeSelector.currentNode()
        segmentation = self.ui.caseSegmentationSelector.currentNode()
        if volume is None or segmentation is None:
            self.setStatus("Pick a case volume and its segmentation first.")
            return
        ids = [volume.GetID()] + ([second.GetID()] if second is not None else [])
        self.cases.append((ids, segmentation.GetID()))
        names = " + ".join(slicer.mrmlScene.GetNodeByID(i).GetName() for i in ids)
        self.ui.caseList.addItem(f"{names}  |  {segmentation.GetName()}")

    def onRemoveCase(self):
        row = self.ui.caseList.currentRow
        if 0 <= row < len(self.cases):
            del self.cases[row]
            self.ui.caseList.takeItem(row)

    # run -----------------------------------------------------------------------------------
    def settings(self):
        patch = int(self.ui.patchSpinBox.value)
        return TrainingSettings(
            modality=self.ui.modalityComboBox.currentText, patch_size=[patch, patch, patch],
            epochs=int(self.ui.epochsSpinBox.value), steps_per_epoch=int(self.ui.stepsSpinBox.value),
            learning_rate=float(self.ui.learningRateSpinBox.value), val_fraction=float(self.ui.validationSpinBox.value),
            device=self.ui.trainDeviceComboBox.currentText, augmentation=AugmentationSettings(),
            name=os.path.basename(os.path.normpath(self.ui.outputPathEdit.currentPath or "model")),
            command="3D Slicer SegmentationAI panel, Train section")

    def onStartStop(self):
        if self.job is not None and self.job.running:
            self.job.stop()
            self.setStatus("Stopping after the current step...")
            return
        try:
            self.job = self.createJob()
        except SurgicalAIError as error:
            self.setStatus(str(error))
            return
        self.job.start()
        self.ui.startTrainingButton.text = "Stop training"
        self.ui.trainProgressBar.value = 0
        self.setStatus("Preparing the cases...")
        self.timer.start()

    def createJob(self):
        """Read the cases from the scene here, on the main thread; the thread only sees arrays."""
        if not self.cases:
            raise SurgicalAIError("Add at least two cases (volume + segmentation) first.")
        output = self.ui.outputPathEdit.currentPath
        if not output:
            raise SurgicalAIError("Choose an output model folder.")
        scene = slicer.mrmlScene
        cases = [case_from_nodes([scene.GetNodeByID(i) for i in ids], scene.GetNodeByID(seg_id))
                 for ids, seg_id in self.cases]
        text = self.ui.mappingEdit.text.strip()
        mapping = LabelMapping.parse([t for t in text.split(";") if t.strip()]) if text else LabelMapping.identity(cases)
        finetune = self.ui.finetunePathEdit.currentPath or None
        return TrainingJob(cases, mapping, output, self.settings(), init_model=finetune,
                           resume=bool(self.ui.resumeCheckBox.checked))

    def onPoll(self):
        if self.job is None:
            return
        for event in self.job.poll():
            kind = event["kind"]
            if kind == "progress":
                self.ui.trainProgressBar.value = int(round(100 * event["fraction"]))
                self.setStatus(event["message"])
            elif kind == "epoch":
                dice = f", validation Dice {event['val_mean_dice']:.3f}" if "val_mean_dice" in event else ""
                self.setStatus(f"Epoch {event['epoch']}: loss {event['train_loss']:.4f}{dice}")
                self.showCurves()
            elif kind == "done":
                self.finish(f"Model written to {event['model_path']}.")
            elif kind == "error":
                self.finish(event["message"])

    def showCurves(self):
        if self.job is not None and self.job.curves_path.is_file():
            pixmap = qt.QPixmap(str(self.job.curves_path))
            width = max(self.ui.curvesLabel.width, 300)
            self.ui.curvesLabel.setPixmap(pixmap.scaledToWidth(width, qt.Qt.SmoothTransformation))

    def finish(self, message):
        self.timer.stop()
        self.showCurves()
        self.ui.startTrainingButton.text = "Start training"
        self.setStatus(message)

    def setStatus(self, text):
        self.ui.trainStatusLabel.text = text
