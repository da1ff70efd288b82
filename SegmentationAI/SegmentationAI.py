"""SegmentationAI: U-Net segmentation of CT/MR volumes into named, coloured structures.

The Slicer face only: a binding of the Qt-free panel logic (``SegmentationAILib.panel.SegmentPanel``,
``SegmentationAILib.train_panel.TrainPanel``), whose state lives in parameter nodes saved with the scene.
Nothing heavy is imported until the dependencies are confirmed; the work runs on a worker thread and a
timer applies its result on the GUI thread.
"""
import ctk  # noqa: F401 (the .ui's ctk widgets)
import qt
import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

POLL_MS = 100


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
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The bundled CT in the Sample Data module (a local file: nothing is downloaded)."""
    try:
        import SampleData

        from SurgicalAICore.sample_data import register_sample_data
    except ImportError:
        return
    register_sample_data(SampleData.SampleDataLogic.registerCustomSampleDataSource)


class SegmentationAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.panel = None
        self.binding = None
        self.trainSection = None
        self._offered = False
        self._summaryKey = None

    # ---- first run: nothing heavy before the dependencies are confirmed ----
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        from SurgicalAICore.panel.first_run import DependencyGate

        self.gate = DependencyGate()
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.onPoll)
        self.placeholder = qt.QWidget()
        box = qt.QVBoxLayout(self.placeholder)
        self.placeholderLabel = qt.QLabel()
        self.placeholderLabel.wordWrap = True
        self.installButton = qt.QPushButton("Install dependencies")
        self.installButton.clicked.connect(self.onInstall)
        box.addWidget(self.placeholderLabel)
        box.addWidget(self.installButton)
        self.layout.addWidget(self.placeholder)
        self.layout.addStretch(1)
        if self.gate.check():
            self.buildPanel()
        else:
            self.placeholderLabel.text = self.gate.message

    def enter(self):
        if self.panel is None and not self._offered and not self.gate.restart_needed:
            self._offered = True  # offer once on entering; the button stays for later
            self.onInstall()

    def onInstall(self):
        with slicer.util.WaitCursor():
            ready = self.gate.install(slicer.util.confirmOkCancelDisplay, slicer.util.pip_install)
        if ready:
            self.buildPanel()
        else:
            self.placeholderLabel.text = self.gate.message
            self.installButton.enabled = not self.gate.restart_needed

    def buildPanel(self):
        from SegmentationAILib.panel import SegmentPanel
        from SegmentationAIWidgets.train_section import TrainSection
        from SurgicalAICore.panel.choices import ModelChoice
        from SurgicalAICore.panel.widget_binding import WidgetBinding

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegmentationAI.ui"))
        self.layout.insertWidget(0, uiWidget)
        self.placeholder.visible = False
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = SegmentPanel(slicer.mrmlScene)
        self.binding = WidgetBinding(self.panel.params, on_change=self.updateView)
        for name, widget in (("inputVolume", self.ui.inputVolumeSelector),
                             ("outputSegmentation", self.ui.outputSegmentationSelector),
                             ("inputSequence", self.ui.inputSequenceSelector),
                             ("modelFolder", self.ui.modelFolderPathLineEdit), ("device", self.ui.deviceComboBox),
                             ("tta", self.ui.ttaCheckBox), ("clahe", self.ui.claheCheckBox),
                             ("denoise", self.ui.denoiseCheckBox)):
            self.binding.bind(name, widget)
        self.binding.bind("model", self.ui.modelComboBox,
                          {ModelChoice.BUNDLED: "Bundled abdominal CT model", ModelChoice.FOLDER: "Model folder..."})
        self.ui.applyButton.clicked.connect(self.onApplyOrCancel)
        self.ui.applySequenceButton.clicked.connect(lambda: self.onApplyOrCancel(sequence=True))
        self.trainSection = TrainSection(self.layout, 1, otherJobRunning=lambda: self.panel.running)
        self.binding.observe()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndClose)

    # ---- scene and application life ----
    def onSceneStartClose(self, caller=None, event=None):
        self.timer.stop()
        self.panel.shutdown()  # a closing scene gets no result
        self.trainSection.shutdown()

    def onSceneEndClose(self, caller=None, event=None):
        self.binding.observe()  # the parameter node is found (or made) again
        self.trainSection.reconnect()

    def cleanup(self):
        self.timer.stop()
        if self.panel is not None:
            self.panel.shutdown()
            self.binding.release()
            self.trainSection.cleanup()
        self.removeObservers()

    # ---- view ----
    def updateView(self):
        panel, running = self.panel, self.panel.running
        folder = panel.params.get("model").value == "folder"
        for widget in (self.ui.modelFolderLabel, self.ui.modelFolderPathLineEdit):
            widget.visible = folder
        key = panel.model_path()
        if key != self._summaryKey:
            self._summaryKey = key
            self.ui.modelInfoLabel.text = panel.model_summary()
        for widget in (self.ui.inputVolumeSelector, self.ui.outputSegmentationSelector,
                       self.ui.inputSequenceSelector, self.ui.modelComboBox,
                       self.ui.modelFolderPathLineEdit, self.ui.deviceComboBox, self.ui.ttaCheckBox,
                       self.ui.claheCheckBox, self.ui.denoiseCheckBox):
            widget.enabled = not running
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = running or (panel.can_apply and not self.trainSection.running)
        self.ui.applySequenceButton.text = "Cancel" if running else "Segment every item"
        self.ui.applySequenceButton.enabled = running or (panel.can_apply_sequence and not self.trainSection.running)
        self.ui.progressBar.value = round(100 * panel.job.fraction)
        self.ui.statusLabel.text = panel.job.message
        self.trainSection.updateView()

    def onApplyOrCancel(self, sequence=False):
        from SurgicalAICore.panel.jobs import error_message

        try:
            if self.panel.running:
                self.panel.cancel()
            else:
                self.panel.apply_sequence() if sequence else self.panel.apply()
                self.timer.start()
        except Exception as error:  # refused before any work: one line, the scene unchanged
            slicer.util.errorDisplay(error_message(error))
        finally:
            self.updateView()

    def onPoll(self):
        finished = self.panel.poll()
        self.updateView()
        if not finished:
            return
        self.timer.stop()
        for note in self.panel.notes:
            slicer.util.warningDisplay(note)
        job = self.panel.job
        if job.error is None and job.result is not None and job.result.IsA("vtkMRMLSegmentationNode"):
            slicer.util.setSliceViewerLayers(background=self.panel.params.get("inputVolume"))
        elif not job.error.startswith("Cancelled"):
            slicer.util.errorDisplay(f"Segmentation failed; nothing was added to the scene.\n{job.error}")


class SegmentationAILogic(ScriptedLoadableModuleLogic):
    """Scripting entry point: the same panel logic the widget binds, on the application's scene."""

    def panel(self):
        from SegmentationAILib.panel import SegmentPanel

        return SegmentPanel(slicer.mrmlScene)


class SegmentationAITest(ScriptedLoadableModuleTest):
    """The user stories pytest runs (Testing/test_panel_segment.py), on the application's scene."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        from SurgicalAICore.panel.first_run import DependencyGate

        gate = DependencyGate()
        if not gate.check():
            self.skipTest(f"this Slicer lacks the module's Python packages ({gate.message})")
        self.setUp()
        self.test_segment_story()
        self.setUp()
        self.test_bad_volume_is_refused()

    def test_segment_story(self):
        import os
        import tempfile

        from SegmentationAILib.panel import SegmentPanel
        from SegmentationAILib.scene_segmentation import statistics_table_of
        from SurgicalAICore.resources import sample_ct_path

        volume = slicer.util.loadVolume(str(sample_ct_path()))
        panel = SegmentPanel(slicer.mrmlScene)
        panel.params.update(inputVolume=volume, device="cpu", tta=False)
        count = slicer.mrmlScene.GetNumberOfNodes()
        panel.apply()
        panel.cancel()
        self.assertTrue(panel.job.wait(300))
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)  # cancelled: nothing added
        panel.apply()
        self.assertTrue(panel.job.wait(600))
        self.assertIsNone(panel.job.error)
        node = panel.params.get("outputSegmentation")
        self.assertEqual(statistics_table_of(node).GetNumberOfRows(), node.GetSegmentation().GetNumberOfSegments())
        path = os.path.join(tempfile.mkdtemp(), "story.mrb")
        self.assertTrue(slicer.util.saveScene(path))
        slicer.mrmlScene.Clear(0)
        slicer.util.loadScene(path)
        again = SegmentPanel(slicer.mrmlScene)
        self.assertEqual(again.params.get("outputSegmentation").GetName(), node.GetName())
        self.assertFalse(again.params.get("tta"))
        self.delayDisplay("Segment story passed")

    def test_bad_volume_is_refused(self):
        import vtk

        from SegmentationAILib.panel import SegmentPanel
        from SurgicalAICore.errors import InputError

        image = vtk.vtkImageData()
        image.SetDimensions(16, 16, 1)
        image.AllocateScalars(vtk.VTK_SHORT, 1)
        flat = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "flat")
        flat.SetAndObserveImageData(image)
        panel = SegmentPanel(slicer.mrmlScene)
        panel.params.update(inputVolume=flat, device="cpu", tta=False)
        count = slicer.mrmlScene.GetNumberOfNodes()
        try:  # refused at once, or the job fails with one line: either way nothing is added
            panel.apply()
            self.assertTrue(panel.job.wait(120))
            self.assertIsNotNone(panel.job.error)
        except InputError:
            pass
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.delayDisplay("Bad input refused")
