"""Registration and Overlay sections of the SurgicalDepth panel: a binding of
``SurgicalDepthLib.panel.registration_panel.RegistrationPanel`` (which registers the depth section's last
cloud, recorded or live). Tracking steps run from this section's timer, stopped with the panel.
"""
import os

import qt
import slicer

TRACK_MS = 100


class RegistrationSection:
    def __init__(self, parentLayout, index, depthPanel):
        from SurgicalAICore.panel.widget_binding import WidgetBinding
        from SurgicalDepthLib.panel.registration_panel import RegistrationPanel, TargetType, init_method_labels

        here = os.path.dirname(os.path.dirname(__file__))
        path = os.path.join(here, "Resources", "UI", "SurgicalDepthRegistration.ui")
        self.widget = slicer.util.loadUI(path)
        parentLayout.insertWidget(index, self.widget)
        self.ui = slicer.util.childWidgetVariables(self.widget)
        self.widget.setMRMLScene(slicer.mrmlScene)
        self.panel = RegistrationPanel(slicer.mrmlScene, depthPanel)
        self.binding = WidgetBinding(self.panel.params, on_change=self.updateView)
        self.binding.bind("targetType", self.ui.targetTypeComboBox,
                          {TargetType.SEGMENTATION: "Segmentation", TargetType.THRESHOLD: "CT threshold",
                           TargetType.MODEL: "Surface model (mesh)"})
        self.binding.bind("initMethod", self.ui.initMethodComboBox, init_method_labels())
        for name, widget in (("targetSegmentation", self.ui.targetSegmentationSelector),
                             ("targetVolume", self.ui.targetVolumeSelector), ("thresholdHu", self.ui.thresholdSpinBox),
                             ("targetModel", self.ui.targetModelSelector),
                             ("trackerTransform", self.ui.trackerTransformSelector),
                             ("handEyeTransform", self.ui.handEyeTransformSelector),
                             ("landmarksCloud", self.ui.landmarksCloudSelector),
                             ("landmarksCT", self.ui.landmarksCTSelector), ("scale", self.ui.scaleCheckBox),
                             ("showOverlay", self.ui.showOverlayCheckBox),
                             ("overlaySegments", self.ui.overlaySegmentsLineEdit), ("opacity", self.ui.opacitySlider),
                             ("followCamera", self.ui.followCameraCheckBox),
                             ("fuseFrames", self.ui.fuseFramesSpinBox)):
            self.binding.bind(name, widget)
        self.ui.targetSegmentationSelector.currentNodeChanged.connect(self.ui.targetSegmentsSelector.setCurrentNode)
        self.ui.targetSegmentsSelector.segmentSelectionChanged.connect(self.onSegmentsChanged)
        self.ui.registerButton.clicked.connect(lambda: self.act(self.panel.register, "Registration failed"))
        self.ui.trackLiveButton.clicked.connect(self.onTrackLive)
        self.ui.overlayButton.clicked.connect(lambda: self.act(self.overlay, "Overlay failed"))
        self.ui.fuseButton.clicked.connect(lambda: self.act(self.panel.fuse, "Fusion failed"))
        self.ui.exportFusedButton.clicked.connect(self.onExportFused)
        self.ui.registerFusedButton.clicked.connect(lambda: self.act(self.panel.register_fused, "Refinement failed"))
        self.timer = qt.QTimer()
        self.timer.setInterval(TRACK_MS)
        self.timer.timeout.connect(self.poll)
        self.binding.observe()

    @property
    def tracking(self):
        return self.panel.tracking

    # ---- life ----
    def reconnect(self):
        self.binding.observe()

    def shutdown(self):
        self.timer.stop()
        self.panel.shutdown()
        self.updateView()

    def cleanup(self):
        self.timer.stop()
        self.panel.shutdown()
        self.binding.release()

    # ---- view ----
    def updateView(self):
        from SurgicalDepthLib.panel.registration_panel import InitMethod, TargetType

        values = self.panel.params.values()
        target = values["targetType"]
        for widget in (self.ui.targetSegmentationLabel, self.ui.targetSegmentationSelector,
                       self.ui.targetSegmentsLabel, self.ui.targetSegmentsSelector):
            widget.visible = target is TargetType.SEGMENTATION
        for widget in (self.ui.targetVolumeLabel, self.ui.targetVolumeSelector, self.ui.thresholdLabel,
                       self.ui.thresholdSpinBox):
            widget.visible = target is TargetType.THRESHOLD
        for widget in (self.ui.targetModelLabel, self.ui.targetModelSelector):
            widget.visible = target is TargetType.MODEL
        method = values["initMethod"]
        for widget in (self.ui.trackerTransformLabel, self.ui.trackerTransformSelector,
                       self.ui.handEyeTransformLabel, self.ui.handEyeTransformSelector):
            widget.visible = method is InitMethod.TRACKING
        for widget in (self.ui.landmarksCloudLabel, self.ui.landmarksCloudSelector,
                       self.ui.landmarksCTLabel, self.ui.landmarksCTSelector):
            widget.visible = method is InitMethod.LANDMARKS
        self.ui.trackLiveButton.checkable = False  # shows the state; never left pressed after a failure
        self.ui.trackLiveButton.text = "Stop tracking" if self.panel.tracking else "Track live"
        self.ui.registerButton.enabled = not self.panel.tracking
        self.ui.fuseButton.enabled = self.panel.history_size >= 2
        self.ui.fuseButton.toolTip = f"{self.panel.history_size} trusted frames kept for fusion."
        self.ui.exportFusedButton.enabled = self.panel.session.fused is not None
        self.ui.registerFusedButton.enabled = self.panel.session.fused is not None and not self.panel.tracking
        self.ui.residualLabel.text = self.panel.quality_text
        self.ui.qualityLabel.text = self.panel.message
        colours = {"trusted": "color: green", "uncertain": "color: orange", "lost": "color: red"}
        self.ui.qualityLabel.setStyleSheet(colours.get(self.panel.state, ""))

    def onSegmentsChanged(self, *_):
        self.panel.params.set("targetSegments", ",".join(self.ui.targetSegmentsSelector.selectedSegmentIDs()))

    def act(self, action, failure):
        from SurgicalAICore.panel.jobs import error_message

        try:
            with slicer.util.WaitCursor():
                action()
        except Exception as error:
            self.panel.message = error_message(error)
            slicer.util.errorDisplay(f"{failure}: {error_message(error)}")
        finally:
            self.updateView()

    def onExportFused(self):
        path = qt.QFileDialog.getSaveFileName(None, "Export fused surface", "fused.ply",
                                              "Point set (*.ply *.vtk *.vtp)")
        if path:
            self.act(lambda: self.panel.export_fused(path), "Cannot export the fused surface")

    def overlay(self):
        cameraNode = None
        if self.panel.params.get("followCamera"):
            # drive the camera of the first 3D view, so that view looks through the endoscope
            viewNode = slicer.app.layoutManager().threeDWidget(0).mrmlViewNode()
            cameraNode = slicer.modules.cameras.logic().GetViewActiveCameraNode(viewNode)
        self.panel.overlay(camera_node=cameraNode)

    def onTrackLive(self):
        if self.panel.tracking:
            self.panel.stop_tracking()
            self.timer.stop()
            self.updateView()
            return
        self.act(self.panel.start_tracking, "Cannot start tracking")
        if self.panel.tracking:
            self.timer.start()

    def poll(self):
        """One tracking step when the cloud changed; the timer stops with tracking (on a failure too)."""
        self.panel.poll()
        if not self.panel.tracking:
            self.timer.stop()
        self.updateView()
