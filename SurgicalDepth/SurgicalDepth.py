"""SurgicalDepth: endoscope / microscope video -> depth maps and point clouds in the scene, recorded or live.

The Slicer face only: the work is done by the Qt-free ``SurgicalDepthLib`` (tested with pytest on a
real MRML scene); the Logic wraps ``SurgicalDepthLib.live_processor.DepthSession`` with
``slicer.mrmlScene``.
"""
import logging
import os

import ctk  # noqa: F401 (the .ui's ctk widgets)
import qt
import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

SOURCE_FILE, SOURCE_FOLDER, SOURCE_SEQUENCE, SOURCE_LIVE = range(4)


class SurgicalDepth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Surgical Depth"
        self.parent.categories = ["Surgical AI"]
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["SlicerSurgicalAI contributors"]
        self.parent.helpText = (
            "Depth from endoscope or microscope video (file, frame folder, recorded sequence or a live "
            "OpenIGTLink image), shown as a depth map and a coloured point cloud under a camera-to-world "
            "transform. Recorded input becomes one sequence browser with video, depth and clouds.")
        self.parent.acknowledgementText = "Part of SlicerSurgicalAI."


class SurgicalDepthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = SurgicalDepthLogic()
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/SurgicalDepth.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.cancelToken = None

        self.ui.sourceTypeComboBox.currentIndexChanged.connect(self.onSourceTypeChanged)
        self.ui.loadCameraButton.clicked.connect(self.onLoadCamera)
        self.ui.saveCameraButton.clicked.connect(self.onSaveCamera)
        self.ui.calibrateButton.clicked.connect(self.onCalibrate)
        self.ui.startLiveButton.toggled.connect(self.onStartStopLive)
        self.ui.processAllButton.clicked.connect(self.onProcessAll)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.adaptButton = qt.QPushButton("Adapt to this video")
        self.adaptButton.toolTip = ("Fine-tune the depth model on the selected recording without labels (camera motion "
                                    "+ photometric consistency) and use the adapted model; needs the camera intrinsics.")
        self.adaptButton.clicked.connect(self.onAdapt)
        self.layout.addWidget(self.adaptButton)
        self.ui.pointBudgetSpinBox.valueChanged.connect(self.onSettingsChanged)
        self.ui.deviceComboBox.currentIndexChanged.connect(self.onSettingsChanged)

        # results are shown on the main thread: the worker only fills a newest-result slot
        self.timer = qt.QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self.onTimer)
        self.onSourceTypeChanged(self.ui.sourceTypeComboBox.currentIndex)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneImported)
        self.layout.addStretch(1)

        try:
            from SurgicalDepthRegistrationSection import RegistrationSection
        except ImportError as error:
            logging.warning(f"SurgicalDepth: registration section unavailable ({error}).")
        else:
            self.registrationSection = RegistrationSection(self.layout, self.logic)

    def enter(self):
        # first time the panel is shown: offer to install missing Python packages into Slicer
        if not getattr(self, "_dependenciesChecked", False):
            import SegmentationAIDependencies
            self._dependenciesChecked = SegmentationAIDependencies.ensureDependencies()

    def cleanup(self):
        self.timer.stop()
        if self.logic is not None:
            self.logic.stop()
        self.removeObservers()

    # ---- helpers ----
    def report(self, error):
        self.ui.statusLabel.text = str(error)
        slicer.util.errorDisplay(str(error))

    def sourceSpec(self):
        kind = self.ui.sourceTypeComboBox.currentIndex
        if kind == SOURCE_FILE:
            return self.ui.videoFilePathLineEdit.currentPath
        if kind == SOURCE_FOLDER:
            return self.ui.frameFolderPathLineEdit.currentPath
        if kind == SOURCE_SEQUENCE:
            return self.ui.sequenceBrowserSelector.currentNode()
        return self.ui.liveNodeSelector.currentNode()

    def applySettings(self):
        path = self.ui.modelFolderPathLineEdit.currentPath or None
        with slicer.util.tryWithErrorDisplay("Cannot load the depth model.", waitCursor=True):
            self.logic.setModel(path, self.ui.deviceComboBox.currentText, self.ui.pointBudgetSpinBox.value)
            return True
        return False

    def progress(self, fraction, message):
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message
        slicer.app.processEvents()

    # ---- slots ----
    def onSourceTypeChanged(self, index):
        rows = [(self.ui.videoFileLabel, self.ui.videoFilePathLineEdit),
                (self.ui.frameFolderLabel, self.ui.frameFolderPathLineEdit),
                (self.ui.sequenceLabel, self.ui.sequenceBrowserSelector),
                (self.ui.liveNodeLabel, self.ui.liveNodeSelector)]
        for i, widgets in enumerate(rows):
            for w in widgets:
                w.visible = i == index
        self.ui.processAllButton.enabled = index != SOURCE_LIVE
        self.ui.calibrateButton.enabled = index != SOURCE_LIVE

    def onSettingsChanged(self, *_):
        if self.logic.running:
            self.applySettings()

    def onLoadCamera(self):
        with slicer.util.tryWithErrorDisplay("Cannot load the camera.", waitCursor=True):
            camera = self.logic.loadCamera(self.ui.cameraFilePathLineEdit.currentPath)
            self.ui.cameraStatusLabel.text = self.cameraText(camera)

    def onSaveCamera(self):
        path = self.ui.cameraFilePathLineEdit.currentPath
        if not path:
            path = qt.QFileDialog.getSaveFileName(None, "Save camera", "camera.json", "Camera (*.json *.yml *.xml)")
        if path:
            with slicer.util.tryWithErrorDisplay("Cannot save the camera."):
                self.logic.saveCamera(path)
                self.ui.statusLabel.text = f"Camera saved to {path}."

    def onCalibrate(self):
        pattern = (self.ui.boardColumnsSpinBox.value, self.ui.boardRowsSpinBox.value)
        with slicer.util.tryWithErrorDisplay("Calibration failed.", waitCursor=True):
            result = self.logic.calibrate(self.sourceSpec(), pattern, self.ui.squareSizeSpinBox.value, self.progress)
            self.ui.cameraStatusLabel.text = result.summary()

    def onStartStopLive(self, checked):
        if not checked:
            self.timer.stop()
            stats = self.logic.stop()
            self.ui.startLiveButton.text = "Start live"
            self.ui.statusLabel.text = "Stopped." if stats is None else f"Stopped. {stats.text()}"
            return
        if not self.applySettings():
            self.ui.startLiveButton.checked = False
            return
        try:
            self.logic.start(self.sourceSpec(), self.ui.cameraTransformSelector.currentNode())
        except Exception as error:
            self.ui.startLiveButton.checked = False
            self.report(error)
            return
        self.ui.startLiveButton.text = "Stop live"
        self.ui.statusLabel.text = "Running."
        self.timer.start()

    def onTimer(self):
        try:
            stats = self.logic.update()
        except Exception as error:
            self.ui.startLiveButton.checked = False
            self.report(error)
            return
        if stats is not None:
            self.ui.statsLabel.text = stats.text()

    def onProcessAll(self):
        if not self.applySettings():
            return
        from SegmentationAILib.progress import CancelToken

        self.cancelToken = CancelToken()
        self.ui.cancelButton.enabled = True
        self.ui.processAllButton.enabled = False
        out_dir = self.ui.outputFolderPathLineEdit.currentPath or None
        try:
            with slicer.util.tryWithErrorDisplay("Processing failed; nothing was added.", waitCursor=True):
                summary = self.logic.processAll(self.sourceSpec(), out_dir, self.ui.cameraTransformSelector.currentNode(),
                                                self.progress, self.cancelToken)
                m = summary.median_ms
                self.ui.statusLabel.text = f"{summary.frames} frames processed ({summary.fps:.1f} frames/s)."
                self.ui.statsLabel.text = (f"median ms: read {m['read']:.0f}, prep {m['prep']:.0f}, infer {m['infer']:.0f}, "
                                           f"cloud {m['cloud']:.0f}, save {m['write']:.0f}")
        finally:
            self.cancelToken = None
            self.ui.cancelButton.enabled = False
            self.ui.processAllButton.enabled = True

    def onAdapt(self):
        folder = qt.QFileDialog.getExistingDirectory(None, "Folder to write the adapted depth model in")
        if not folder:
            return
        import time
        from pathlib import Path

        from SegmentationAILib.progress import CancelToken

        self.cancelToken = CancelToken()
        self.ui.cancelButton.enabled = True
        self.adaptButton.enabled = False
        try:
            with slicer.util.tryWithErrorDisplay("Adaptation failed; the model was not changed.", waitCursor=True):
                out = Path(folder) / time.strftime("adapted-depth-%Y%m%d-%H%M%S")
                result = self.logic.adapt(self.sourceSpec(), out, self.progress, self.cancelToken)
                metrics = result.card.get("metrics", {})
                self.ui.modelFolderPathLineEdit.currentPath = str(result.path)
                self.ui.statusLabel.text = (f"Adapted model {result.path.name}: held-back photometric error "
                                            f"{metrics.get('held_back_photometric_before')} -> "
                                            f"{metrics.get('held_back_photometric_after')}.")
        finally:
            self.cancelToken = None
            self.ui.cancelButton.enabled = False
            self.adaptButton.enabled = True

    def onCancel(self):
        if self.cancelToken is not None:
            self.cancelToken.cancel()

    def onSceneImported(self, caller, event):
        if self.logic.restoreCamera():
            self.ui.cameraStatusLabel.text = self.cameraText(self.logic.session.camera)

    @staticmethod
    def cameraText(camera):
        return (f"{camera.width}x{camera.height}, fx {camera.fx:.1f}, fy {camera.fy:.1f}, "
                f"centre ({camera.cx:.1f}, {camera.cy:.1f}), distortion "
                + ", ".join(f"{d:.3g}" for d in camera.distortion))


class SurgicalDepthLogic(ScriptedLoadableModuleLogic):
    """Delegates to ``SurgicalDepthLib.live_processor.DepthSession`` on ``slicer.mrmlScene``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        from SurgicalDepthLib.live_processor import DepthSession

        self.session = DepthSession(slicer.mrmlScene)

    @property
    def running(self):
        return self.session.running

    def setModel(self, path=None, device="auto", maxPoints=None):
        self.session.set_model(path, device, maxPoints)

    def loadCamera(self, path):
        return self.session.load_camera(path)

    def saveCamera(self, path):
        return self.session.save_camera(path)

    def restoreCamera(self):
        return self.session.restore_camera()

    def calibrate(self, source, pattern, squareMm, progress=None):
        return self.session.calibrate(source, pattern, squareMm, progress=progress)

    def start(self, source, transformNode=None):
        self.session.start(source, transformNode)

    def update(self):
        return self.session.update()

    def stop(self):
        return self.session.stop()

    def processAll(self, source, outDir=None, transformNode=None, progress=None, cancel=None):
        return self.session.process_all(source, outDir, transformNode, progress, cancel)

    def adapt(self, source, output, progress=None, cancel=None):
        from SurgicalDepthLib.adapt_depth import adapt_for_session

        return adapt_for_session(self.session, source, output, progress=progress, cancel=cancel)


class SurgicalDepthTest(ScriptedLoadableModuleTest):
    """Runs in Slicer the same scenario the pytest suite checks headless."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_process_frames_into_sequences()
        self.setUp()
        self.test_live_recorded_source()

    def _frames_folder(self):
        import tempfile

        import cv2
        import numpy as np

        folder = tempfile.mkdtemp(prefix="SurgicalDepthTest-")
        for i in range(4):
            rgb = np.zeros((64, 80, 3), np.uint8)
            rgb[..., 0] = 100 + 20 * i
            rgb[..., 1] = 90
            cv2.imwrite(os.path.join(folder, f"f{i}.png"), rgb)
        return folder

    def test_process_frames_into_sequences(self):
        self.delayDisplay("Process a folder of frames with the bundled depth model")
        logic = SurgicalDepthLogic()
        logic.setModel(None, "cpu", 2000)
        summary = logic.processAll(self._frames_folder())
        self.assertEqual(summary.frames, 4)
        browser = summary.scene_nodes["browser"]
        self.assertEqual(browser.GetNumberOfItems(), 4)
        cloud = summary.scene_nodes["proxies"]["pointcloud"]
        self.assertGreater(cloud.GetPolyData().GetNumberOfPoints(), 0)
        self.delayDisplay("Test passed")

    def test_live_recorded_source(self):
        import time

        self.delayDisplay("Live processing of a recorded folder")
        logic = SurgicalDepthLogic()
        logic.setModel(None, "cpu", 2000)
        logic.start(self._frames_folder())
        end = time.time() + 30
        stats = None
        while time.time() < end:
            stats = logic.update()
            if stats is not None and stats.shown > 0:
                break
            slicer.app.processEvents()
            time.sleep(0.02)
        logic.stop()
        self.assertIsNotNone(stats)
        self.assertGreater(stats.shown, 0)
        self.delayDisplay("Test passed")
