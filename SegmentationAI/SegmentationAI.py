"""SegmentationAI: U-Net segmentation of CT/MR volumes into named, coloured structures.

The Slicer face only: the work is done by the Qt-free ``SegmentationAILib`` (tested with pytest
on a real MRML scene); the Logic delegates to it with ``slicer.mrmlScene``.
"""
import ctk  # noqa: F401 (the .ui's ctk widgets)
import slicer
import vtk
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

BUNDLED, FOLDER = range(2)


class SegmentationAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Segmentation AI"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerSurgicalAI contributors"]
        self.parent.helpText = (
            "Segments a CT (or MR) volume with a 3-D U-Net (MONAI) into named, coloured structures: pick the "
            "volume and a model (the bundled abdominal CT model or a model folder), press Apply. The result "
            "is a new segmentation with 3-D surfaces and a table of volumes (mL). Options: device, mirroring "
            "test-time augmentation, CLAHE and denoising. The same runs headless: <code>surgicalai segment</code>.")
        self.parent.acknowledgementText = (
            "Part of SlicerSurgicalAI. The bundled model was trained on the TotalSegmentator example CT and "
            "its reference labels (Wasserthal et al., TotalSegmentator, Radiology: AI 2023; CC BY 4.0). "
            "Uses MONAI, PyTorch and SimpleITK.")


class SegmentationAIWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.cancelToken = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = SegmentationAILogic()
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegmentationAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.ui.modelComboBox.currentIndexChanged.connect(self.onModelChoiceChanged)
        self.ui.modelFolderPathLineEdit.currentPathChanged.connect(self.updateModelInfo)
        self.ui.inputVolumeSelector.currentNodeChanged.connect(self.updateApply)
        self.ui.applyButton.clicked.connect(self.onApplyOrCancel)
        self.onModelChoiceChanged(self.ui.modelComboBox.currentIndex)

        from SegmentationAIWidgets.train_section import TrainSection

        self.trainSection = TrainSection(self.layout, self.logic)
        self.layout.addStretch(1)

    def enter(self):
        # first time the panel is shown: offer to install missing Python packages into Slicer
        if not getattr(self, "_dependenciesChecked", False):
            from SurgicalAICore.dependencies import ensure_dependencies

            with slicer.util.tryWithErrorDisplay("Installing Python packages failed.", waitCursor=True):
                self._dependenciesChecked = ensure_dependencies(slicer.util.confirmOkCancelDisplay,
                                                                slicer.util.pip_install)

    def cleanup(self):
        if self.cancelToken is not None:
            self.cancelToken.cancel()

    def modelPath(self):
        if self.ui.modelComboBox.currentIndex == BUNDLED:
            return None
        return self.ui.modelFolderPathLineEdit.currentPath or ""

    def onModelChoiceChanged(self, index):
        for widget in (self.ui.modelFolderLabel, self.ui.modelFolderPathLineEdit):
            widget.visible = index == FOLDER
        self.updateModelInfo()

    def updateModelInfo(self, *_):
        self.ui.modelInfoLabel.text = self.logic.modelSummary(self.modelPath())
        self.updateApply()

    def updateApply(self, *_):
        if self.cancelToken is None:
            self.ui.applyButton.enabled = self.ui.inputVolumeSelector.currentNode() is not None

    def progress(self, fraction, message):
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message
        slicer.app.processEvents()  # keeps the GUI (and the Cancel button) responsive

    def onApplyOrCancel(self):
        if self.cancelToken is not None:
            self.cancelToken.cancel()
            self.ui.statusLabel.text = "Cancelling..."
            return
        self.cancelToken = self.logic.newCancelToken()
        self.ui.applyButton.text = "Cancel"
        try:
            with slicer.util.tryWithErrorDisplay("Segmentation failed; nothing was added to the scene."):
                node = self.logic.segment(
                    self.ui.inputVolumeSelector.currentNode(), self.modelPath(),
                    device=self.ui.deviceComboBox.currentText, tta=self.ui.ttaCheckBox.checked,
                    clahe=self.ui.claheCheckBox.checked, denoise=self.ui.denoiseCheckBox.checked,
                    outputNode=self.ui.outputSegmentationSelector.currentNode(),
                    progress=self.progress, cancel=self.cancelToken)
                self.ui.outputSegmentationSelector.setCurrentNode(node)
                self.ui.statusLabel.text = f"Done: '{node.GetName()}'. " + self.ui.statusLabel.text
        finally:
            if self.cancelToken.cancelled:
                self.ui.statusLabel.text = "Cancelled; nothing was changed."
            self.cancelToken = None
            self.ui.applyButton.text = "Apply"
            self.updateApply()


class SegmentationAILogic(ScriptedLoadableModuleLogic):
    """Delegates to SegmentationAILib with the application's scene; keeps the loaded model."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._model = None
        self._modelKey = None

    @staticmethod
    def newCancelToken():
        from SurgicalAICore.progress import CancelToken

        return CancelToken()

    @staticmethod
    def modelSummary(path):
        from SegmentationAILib.seg_model import model_summary

        return model_summary(path)

    def model(self, path=None, device="auto"):
        from SegmentationAILib.seg_model import load_segmentation_model

        key = (str(path), device)
        if self._modelKey != key:
            self._model = load_segmentation_model(path, device=device)
            self._modelKey = key
        return self._model

    def segment(self, volumeNode, modelPath=None, device="auto", tta=True, clahe=False, denoise=False,
                outputNode=None, progress=None, cancel=None):
        """Segment ``volumeNode`` into a new segmentation node (or ``outputNode``) with a statistics table."""
        from SegmentationAILib.scene_segmentation import segment_volume_node

        options = {"device": device, "tta": tta, "clahe": clahe, "denoise": denoise}
        node = segment_volume_node(slicer.mrmlScene, volumeNode, self.model(modelPath, device), options,
                                   progress=progress, cancel=cancel, output_node=outputNode,
                                   notify=lambda message: slicer.util.warningDisplay(message))
        slicer.util.setSliceViewerLayers(background=volumeNode)
        return node


class SegmentationAITest(ScriptedLoadableModuleTest):
    """The scenario pytest runs (Testing/test_seg_scene.py), on the application's scene."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_segment_sample_ct()
        self.setUp()
        self.test_bad_volume_leaves_scene_unchanged()

    def test_segment_sample_ct(self):
        from SurgicalAICore.resources import sample_ct_path
        from SegmentationAILib.scene_segmentation import statistics_table_of

        volume = slicer.util.loadVolume(str(sample_ct_path()))
        logic = SegmentationAILogic()
        node = logic.segment(volume, None, device="cpu", tta=False)
        names = [node.GetSegmentation().GetNthSegment(n).GetName()
                 for n in range(node.GetSegmentation().GetNumberOfSegments())]
        self.assertIn("liver", names)
        self.assertIn("vertebrae", names)
        table = statistics_table_of(node)
        self.assertIsNotNone(table)
        self.assertEqual(table.GetNumberOfRows(), len(names))
        self.delayDisplay("Sample CT segmented")

    def test_bad_volume_leaves_scene_unchanged(self):
        from SurgicalAICore.errors import InputError

        image = vtk.vtkImageData()
        image.SetDimensions(16, 16, 1)
        image.AllocateScalars(vtk.VTK_SHORT, 1)
        flat = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "flat")
        flat.SetAndObserveImageData(image)
        count = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(InputError):
            SegmentationAILogic().segment(flat, None, device="cpu", tta=False)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.delayDisplay("Bad input refused")
