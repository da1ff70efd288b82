"""SurgicalDepth: endoscope / microscope video -> depth maps and point clouds in the scene, recorded or live.

The Slicer face only: a binding of the Qt-free panel logic (``SurgicalDepthLib.panel.depth_panel.DepthPanel``
and ``registration_panel.RegistrationPanel``), whose state lives in parameter nodes saved with the scene.
Nothing heavy is imported until the dependencies are confirmed; recorded work runs on a worker thread and a
timer shows results on the GUI thread.
"""

import ctk
import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

POLL_MS = 20


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
            "transform. Recorded input becomes one sequence browser with video, depth and clouds."
        )
        self.parent.acknowledgementText = "Part of SlicerSurgicalAI."


class SurgicalDepthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.panel = None
        self.binding = None
        self.registrationSection = None
        self._offered = False

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
            self._offered = True
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
        from SurgicalAICore.panel.widget_binding import WidgetBinding
        from SurgicalDepthLib.panel.depth_panel import DepthPanel, SourceType, StereoLayout
        from SurgicalDepthWidgets.registration_section import RegistrationSection

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SurgicalDepth.ui"))
        self.layout.insertWidget(0, uiWidget)
        self.placeholder.visible = False
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = DepthPanel(slicer.mrmlScene)
        self.binding = WidgetBinding(self.panel.params, on_change=self.updateView)
        labels = {
            SourceType.FILE: "Video file",
            SourceType.FOLDER: "Folder of frames",
            SourceType.SEQUENCE: "Recorded sequence",
            SourceType.LIVE: "Live volume node (OpenIGTLink)",
        }
        self.binding.bind("sourceType", self.ui.sourceTypeComboBox, labels)
        for name, widget in (
            ("videoFile", self.ui.videoFilePathLineEdit),
            ("frameFolder", self.ui.frameFolderPathLineEdit),
            ("sequence", self.ui.sequenceBrowserSelector),
            ("liveNode", self.ui.liveNodeSelector),
            ("cameraFile", self.ui.cameraFilePathLineEdit),
            ("modelFolder", self.ui.modelFolderPathLineEdit),
            ("device", self.ui.deviceComboBox),
            ("pointBudget", self.ui.pointBudgetSpinBox),
            ("cameraTransform", self.ui.cameraTransformSelector),
            ("outputFolder", self.ui.outputFolderPathLineEdit),
            ("boardColumns", self.ui.boardColumnsSpinBox),
            ("boardRows", self.ui.boardRowsSpinBox),
            ("squareSizeMm", self.ui.squareSizeSpinBox),
            ("stereoCalibrationFile", self.ui.stereoCalibrationPathLineEdit),
            ("stereoRightFile", self.ui.stereoRightPathLineEdit),
            ("stereoRightNode", self.ui.stereoRightNodeSelector),
        ):
            self.binding.bind(name, widget)
        stereoLabels = {
            StereoLayout.NONE: "None (monocular network)",
            StereoLayout.SBS: "Side by side",
            StereoLayout.TB: "Top-bottom",
            StereoLayout.INTERLACED: "Interlaced lines",
            StereoLayout.TWO_VIEWS: "Two views (right below)",
        }
        self.binding.bind("stereoLayout", self.ui.stereoLayoutComboBox, stereoLabels)
        self.ui.loadCameraButton.clicked.connect(lambda: self.act(self.panel.load_camera, "Cannot load the camera"))
        self.ui.saveCameraButton.clicked.connect(self.onSaveCamera)
        self.ui.calibrateButton.clicked.connect(lambda: self.act(self.panel.calibrate, "Calibration failed", True))
        self.ui.startLiveButton.clicked.connect(self.onStartStopLive)
        self.ui.processAllButton.clicked.connect(lambda: self.act(self.panel.process_all, "Processing failed", True))
        self.ui.cancelButton.clicked.connect(self.panel.cancel)
        # not in the .ui: one button, placed under the recorded-source actions
        self.adaptButton = qt.QPushButton("Adapt to this video")
        self.adaptButton.toolTip = (
            "Fine-tune the depth model on the chosen recording without labels (camera motion and "
            "photometric consistency), write it to the output folder and use it."
        )
        self.adaptButton.clicked.connect(lambda: self.act(self.panel.adapt, "Adaptation failed", True))
        self.ui.processAllButton.parentWidget().layout().addWidget(self.adaptButton)
        self.ui.processAllButton.parentWidget().layout().addWidget(self.adaptSettings())
        self.registrationSection = RegistrationSection(self.layout, 1, self.panel)
        self.binding.observe()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndClose)

    def adaptSettings(self):
        """The settings of *Adapt to this video* (not in the .ui), bound to the panel's parameters."""
        from SurgicalDepthLib.panel.depth_panel import AdaptLayers, AdaptMotion

        box = ctk.ctkCollapsibleButton()
        box.text = "Adaptation settings"
        box.collapsed = True
        form = qt.QFormLayout(box)
        motion = qt.QComboBox()
        motion.toolTip = ("Camera motion: structure from motion over the whole clip (better on real video), two-view "
                          "pairs, or automatic: the clip's reconstruction where it can be made, else pairs")
        self.binding.bind("adaptMotion", motion,
                          {AdaptMotion.AUTO: "Automatic (SfM, else pairs)", AdaptMotion.SFM: "Whole clip (SfM)",
                           AdaptMotion.PAIRS: "Two-view pairs"})
        form.addRow("Camera motion:", motion)
        for name, label, top, step, tip in (
            ("adaptMinutes", "Time budget (min):", 240.0, 1.0, "Wall-clock budget, motion included"),
            ("adaptConsistencyWeight", "Depth consistency:", 10.0, 0.1,
             "Weight of the dense depth consistency between registered frames (0: off); with whole-clip motion "
             "only (automatic drops it where it falls back to pairs)"),
            ("adaptDistillWeight", "Keep source shape:", 10.0, 0.1,
             "Weight of the distillation to the source model, against forgetting (0: off)"),
        ):
            spin = qt.QDoubleSpinBox()
            spin.decimals, spin.maximum, spin.singleStep, spin.toolTip = 2, top, step, tip
            self.binding.bind(name, spin)
            form.addRow(label, spin)
        layers = qt.QComboBox()
        layers.toolTip = "Layers that adapt: all, or the decoder only (the encoder stays as trained)"
        self.binding.bind("adaptTrainLayers", layers, {AdaptLayers.ALL: "All", AdaptLayers.DECODER: "Decoder only"})
        form.addRow("Adapt layers:", layers)
        return box

    # ---- scene and application life ----
    def onSceneStartClose(self, caller=None, event=None):
        self.timer.stop()
        self.registrationSection.shutdown()
        self.panel.shutdown()

    def onSceneEndClose(self, caller=None, event=None):
        self.panel.restore_camera()
        self.binding.observe()
        self.registrationSection.reconnect()

    def cleanup(self):
        self.timer.stop()
        if self.panel is not None:
            self.registrationSection.cleanup()
            self.panel.shutdown()
            self.binding.release()
        self.removeObservers()

    # ---- view ----
    def updateView(self):
        from SurgicalDepthLib.panel.depth_panel import SourceType, StereoLayout

        panel = self.panel
        kind = panel.params.get("sourceType")
        rows = {
            SourceType.FILE: (self.ui.videoFileLabel, self.ui.videoFilePathLineEdit),
            SourceType.FOLDER: (self.ui.frameFolderLabel, self.ui.frameFolderPathLineEdit),
            SourceType.SEQUENCE: (self.ui.sequenceLabel, self.ui.sequenceBrowserSelector),
            SourceType.LIVE: (self.ui.liveNodeLabel, self.ui.liveNodeSelector),
        }
        for key, widgets in rows.items():
            for widget in widgets:
                widget.visible = key is kind
        layout = panel.params.get("stereoLayout")
        for widget in (self.ui.stereoCalibrationLabel, self.ui.stereoCalibrationPathLineEdit):
            widget.visible = layout is not StereoLayout.NONE
        twoViews, onDisk = layout is StereoLayout.TWO_VIEWS, kind in (SourceType.FILE, SourceType.FOLDER)
        self.ui.stereoRightLabel.visible = twoViews
        self.ui.stereoRightPathLineEdit.visible = twoViews and onDisk
        self.ui.stereoRightNodeSelector.visible = twoViews and not onDisk
        self.ui.modelFolderPathLineEdit.enabled = layout is StereoLayout.NONE
        live, busy = panel.live_running, panel.job.running
        self.ui.startLiveButton.checkable = False  # the button shows the state; it is never left pressed
        self.ui.startLiveButton.text = "Stop live" if live else "Start live"
        self.ui.startLiveButton.enabled = not busy
        self.ui.processAllButton.enabled = kind is not SourceType.LIVE and not live and not busy
        self.ui.calibrateButton.enabled = kind is not SourceType.LIVE and not live and not busy
        self.adaptButton.enabled = kind is not SourceType.LIVE and not live and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.sourceTypeComboBox.enabled = not busy
        self.ui.progressBar.value = round(100 * panel.job.fraction)
        self.ui.statusLabel.text = panel.job.message if busy else (panel.live_message or panel.job.message)
        camera = panel.session.camera
        if camera is not None:
            self.ui.cameraStatusLabel.text = (
                f"{camera.width}x{camera.height}, fx {camera.fx:.1f}, fy {camera.fy:.1f}, "
                f"centre ({camera.cx:.1f}, {camera.cy:.1f}), distortion "
                + ", ".join(f"{d:.3g}" for d in camera.distortion)
            )
        if panel.stats is not None:
            self.ui.statsLabel.text = panel.stats.text()

    def act(self, action, failure, startsJob=False):
        """Run a panel action; a refusal is one line; the view (buttons included) is always brought back."""
        from SurgicalAICore.panel.jobs import error_message

        try:
            with slicer.util.WaitCursor():
                action()
            if startsJob:
                self.timer.start()
        except Exception as error:
            self.ui.statusLabel.text = error_message(error)
            slicer.util.errorDisplay(f"{failure}: {error_message(error)}")
        finally:
            self.updateView()

    def onSaveCamera(self):
        path = self.panel.params.get("cameraFile")
        if not path:
            path = qt.QFileDialog.getSaveFileName(None, "Save camera", "camera.json", "Camera (*.json *.yml *.xml)")
        if path:
            self.act(lambda: self.panel.save_camera(path), "Cannot save the camera")

    def onStartStopLive(self):
        if self.panel.live_running:
            self.panel.stop_live()
            self.timer.stop()
            self.updateView()
        else:
            self.act(self.panel.start_live, "Cannot start live processing", True)

    def onPoll(self):
        panel = self.panel
        wasBusy = panel.job.running
        panel.poll()
        if wasBusy and not panel.job.running:
            error = panel.job.error
            if error is not None and not error.startswith("Cancelled"):
                slicer.util.errorDisplay(f"{panel.job.name} failed; nothing was added: {error}")
            if panel.params.get("videoNode") is not None or panel.params.get("depthNode") is not None:
                slicer.util.resetSliceViews()
        if not panel.job.running and not panel.live_running:
            self.timer.stop()
        self.updateView()


class SurgicalDepthLogic(ScriptedLoadableModuleLogic):
    """Scripting entry point: the same panel logic the widget binds, on the application's scene."""

    def panel(self):
        from SurgicalDepthLib.panel.depth_panel import DepthPanel

        return DepthPanel(slicer.mrmlScene)

    def adapt(self, source, output, progress=None, cancel=None):
        from SurgicalDepthLib.depth.adapt import adapt_for_session

        return adapt_for_session(self.session, source, output, progress=progress, cancel=cancel)


class SurgicalDepthTest(ScriptedLoadableModuleTest):
    """The user stories pytest runs (Testing/test_panel_depth.py), on the application's scene."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        from SurgicalAICore.panel.first_run import DependencyGate

        gate = DependencyGate()
        if not gate.check():
            self.skipTest(f"this Slicer lacks the module's Python packages ({gate.message})")
        self.setUp()
        self.test_process_all_then_live_on_the_sequence()
        self.setUp()
        self.test_register_a_recorded_cloud()

    def _frames_folder(self):
        import os
        import tempfile

        import cv2
        import numpy as np

        folder = tempfile.mkdtemp(prefix="SurgicalDepthTest-")
        rng = np.random.default_rng(0)
        for i in range(4):
            rgb = (rng.random((64, 80, 3)) * 60 + 80 + 10 * i).astype(np.uint8)
            cv2.imwrite(os.path.join(folder, f"f{i}.png"), rgb)
        return folder

    def test_process_all_then_live_on_the_sequence(self):
        import time

        from SurgicalDepthLib.panel.depth_panel import DepthPanel, SourceType

        panel = DepthPanel(slicer.mrmlScene)
        panel.params.update(
            sourceType=SourceType.FOLDER, frameFolder=self._frames_folder(), device="cpu", pointBudget=2000
        )
        count = slicer.mrmlScene.GetNumberOfNodes()
        panel.process_all()
        panel.cancel()
        self.assertTrue(panel.job.wait(120))
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        panel.process_all()
        self.assertTrue(panel.job.wait(300))
        self.assertIsNone(panel.job.error)
        self.assertGreater(panel.params.get("cloudNode").GetPolyData().GetNumberOfPoints(), 0)
        browser = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceBrowserNode")
        panel.params.update(sourceType=SourceType.SEQUENCE, sequence=browser)
        panel.start_live()
        end, stats = time.time() + 60, None
        while time.time() < end and not (stats and stats.shown):
            stats = panel.poll()
            slicer.app.processEvents()
            time.sleep(0.02)
        panel.stop_live()
        self.assertTrue(stats is not None and stats.shown > 0)
        self.assertFalse(panel.live_running)
        self.delayDisplay("Depth stories passed")

    def test_register_a_recorded_cloud(self):
        import numpy as np
        import vtk
        from vtk.util import numpy_support

        from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node
        from SurgicalAICore.mrml.transforms import get_matrix
        from SurgicalDepthLib.panel.depth_panel import DepthPanel
        from SurgicalDepthLib.panel.registration_panel import RegistrationPanel
        from SurgicalDepthLib.registration import shapes
        from SurgicalDepthLib.registration.icp import pose_error

        scene = slicer.mrmlScene
        k, j, i = np.mgrid[0:48, 0:48, 0:48].astype(float)
        labels = np.zeros((48, 48, 48), np.uint8)
        labels[np.sqrt((i - 20) ** 2 + (j - 22) ** 2 + (k - 24) ** 2) <= 12] = 1
        labels[30:40, 8:20, 26:42] = 2
        ijk_to_ras = np.diag([1.5, 1.5, 1.5, 1.0])
        ijk_to_ras[:3, 3] = -36.0
        info = [{"value": 1, "name": "ball", "color": [1, 0, 0]}, {"value": 2, "name": "box", "color": [0, 0, 1]}]
        segmentation = add_segmentation_to_scene(
            scene, new_segmentation_node(labels, ijk_to_ras, info, closed_surface=False)
        )
        depth = DepthPanel(scene)
        panel = RegistrationPanel(scene, depth)
        panel.params.update(targetSegmentation=segmentation, showOverlay=False)
        view = shapes.visible_patch(panel.ensure_target().points, (0.3, 0.2, -1.0), 0.5)
        truth = shapes.perturbation(6, 4, view.mean(0), np.random.default_rng(0))
        points = vtk.vtkPoints()
        points.SetData(
            numpy_support.numpy_to_vtk(np.ascontiguousarray(shapes.apply(np.linalg.inv(truth), view)), deep=True)
        )
        poly = vtk.vtkPolyData()
        poly.SetPoints(points)
        cloud = scene.AddNewNodeByClass("vtkMRMLModelNode", "cloud")
        cloud.SetAndObservePolyData(poly)
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "camera to RAS")
        depth.params.update(cloudNode=cloud, resultTransform=transform)
        panel.register()
        self.assertLess(max(pose_error(get_matrix(transform), truth)[:2]), 0.3)
        self.assertTrue(panel.trusted)
        self.delayDisplay("Registration story passed")
