"""Registration and Overlay sections of the SurgicalDepth panel (Qt glue only).

Loads ``Resources/UI/SurgicalDepthRegistration.ui`` and drives the Qt-free
``SurgicalDepthLib.registration_session.RegistrationSession`` with ``slicer.mrmlScene``; the point
cloud, video and camera-to-RAS nodes, and the camera, come from the SurgicalDepth logic's depth session.
"""
import os

import numpy as np
import qt
import slicer

class RegistrationSection:
    def __init__(self, parentLayout, logic):
        from SurgicalDepthLib.registration_session import RegistrationSession

        from SurgicalDepthLib.registration.initial_pose import INITIALISER_LABELS

        self.logic = logic
        self.session = RegistrationSession(slicer.mrmlScene, logic.session)
        self.initMethods = list(INITIALISER_LABELS)
        self._targetKey = None
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "Resources", "UI", "SurgicalDepthRegistration.ui")
        self.widget = slicer.util.loadUI(path)
        parentLayout.addWidget(self.widget)
        self.ui = slicer.util.childWidgetVariables(self.widget)
        self.widget.setMRMLScene(slicer.mrmlScene)
        self.ui.targetTypeComboBox.currentIndexChanged.connect(self.onTargetTypeChanged)
        self.ui.targetSegmentationSelector.currentNodeChanged.connect(
            lambda node: self.ui.targetSegmentsSelector.setCurrentNode(node))
        self.ui.initMethodComboBox.clear()
        for method in self.initMethods:
            self.ui.initMethodComboBox.addItem(INITIALISER_LABELS[method], method)
        self.ui.initMethodComboBox.currentIndexChanged.connect(self.onInitMethodChanged)
        self.ui.registerButton.clicked.connect(self.onRegister)
        self.ui.trackLiveButton.toggled.connect(self.onTrackLive)
        self.ui.overlayButton.clicked.connect(self.onOverlay)
        self.timer = qt.QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.onTrackTimer)
        self.onTargetTypeChanged(0)
        self.onInitMethodChanged(0)

    # ---- nodes of the depth session ----
    def _output(self):
        return self.session.depth_output()

    def _camera(self, rgb):
        return self.session.camera_for(rgb)

    # ---- target ----
    def onTargetTypeChanged(self, index):
        seg = index == 0
        for w in (self.ui.targetSegmentationLabel, self.ui.targetSegmentationSelector,
                  self.ui.targetSegmentsLabel, self.ui.targetSegmentsSelector):
            w.visible = seg
        for w in (self.ui.targetVolumeLabel, self.ui.targetVolumeSelector, self.ui.thresholdLabel,
                  self.ui.thresholdSpinBox):
            w.visible = index == 1
        for w in (self.ui.targetModelLabel, self.ui.targetModelSelector):
            w.visible = index == 2

    def _ensureTarget(self):
        if self.ui.targetTypeComboBox.currentIndex == 0:
            node = self.ui.targetSegmentationSelector.currentNode()
            ids = list(self.ui.targetSegmentsSelector.selectedSegmentIDs()) or None
            key = ("seg", node.GetID() if node else None, tuple(ids or ()), node.GetMTime() if node else 0)
            if key != self._targetKey:
                self.session.set_target_segmentation(node, ids)
        elif self.ui.targetTypeComboBox.currentIndex == 2:
            node = self.ui.targetModelSelector.currentNode()
            poly = node.GetPolyData() if node else None
            key = ("model", node.GetID() if node else None, poly.GetMTime() if poly else 0)
            if key != self._targetKey:
                self.session.set_target_model(node)
        else:
            node = self.ui.targetVolumeSelector.currentNode()
            hu = self.ui.thresholdSpinBox.value
            key = ("ct", node.GetID() if node else None, hu)
            if key != self._targetKey:
                if node is None:
                    raise ValueError("Choose the CT volume whose isosurface is the target.")
                self.session.set_target_threshold(node, hu)
        self._targetKey = key

    # ---- registration ----
    def onInitMethodChanged(self, index):
        method = self.initMethods[index]
        for w in (self.ui.trackerTransformLabel, self.ui.trackerTransformSelector,
                  self.ui.handEyeTransformLabel, self.ui.handEyeTransformSelector):
            w.visible = method == "tracking"
        for w in (self.ui.landmarksCloudLabel, self.ui.landmarksCloudSelector,
                  self.ui.landmarksCTLabel, self.ui.landmarksCTSelector):
            w.visible = method == "landmarks"

    @staticmethod
    def _points(markups):
        if markups is None:
            return None
        n = markups.GetNumberOfControlPoints()
        out = np.zeros((n, 3))
        for i in range(n):
            markups.GetNthControlPointPositionWorld(i, out[i])
        return out

    def _initKwargs(self, transformNode):
        method = self.initMethods[self.ui.initMethodComboBox.currentIndex]
        inputs = self.session.init_inputs(
            method, transformNode, self.ui.trackerTransformSelector.currentNode(),
            self.ui.handEyeTransformSelector.currentNode(),
            self._points(self.ui.landmarksCloudSelector.currentNode()),
            self._points(self.ui.landmarksCTSelector.currentNode()))
        return {"method": method, **inputs}

    def _showQuality(self, quality):
        self.ui.residualLabel.text = (f"{quality.rms_mm:.2f} mm RMS, {100 * quality.inlier_fraction:.0f}% inliers"
                                      + (f", scale {quality.scale:.3f}" if self.ui.scaleCheckBox.checked else ""))
        self.ui.qualityLabel.text = "trusted" if quality.trusted else f"NOT trusted: {quality.reason}"
        self.ui.qualityLabel.setStyleSheet("color: green" if quality.trusted else "color: red")

    def onRegister(self):
        with slicer.util.tryWithErrorDisplay("Registration failed.", waitCursor=True):
            self._ensureTarget()
            output = self._output()
            kwargs = self._initKwargs(output.transform_node)
            result = self.session.register_once(output.cloud_node, output.transform_node,
                                                scale=self.ui.scaleCheckBox.checked, **kwargs)
            self._showQuality(result.quality)
            self._afterPose(result.matrix)

    def onTrackLive(self, on):
        if on:
            with slicer.util.tryWithErrorDisplay("Cannot start tracking."):
                self._ensureTarget()
                self._output()
                self._lastPoly = None
                self.timer.start()
                return
            self.ui.trackLiveButton.checked = False
        else:
            self.timer.stop()

    def onTrackTimer(self):
        try:
            output = self._output()
            poly = output.cloud_node.GetPolyData()
            if poly is None or poly is self._lastPoly and poly.GetMTime() == getattr(self, "_lastMTime", None):
                return
            self._lastPoly, self._lastMTime = poly, poly.GetMTime()
            result = self.session.track(output.cloud_node, output.transform_node, scale=self.ui.scaleCheckBox.checked)
            self._showQuality(result.quality)
            self._showTrust(result)
            self._afterPose(result.matrix, result.state)
        except Exception as error:  # stop on the first error and say why, rather than every 100 ms
            self.ui.trackLiveButton.checked = False
            slicer.util.errorDisplay(f"Tracking stopped: {error}")

    def _showTrust(self, result):
        """The tracker's three-state trust: a frame it cannot vouch for is said so, in the panel's words."""
        text = {"trusted": "trusted",
                "uncertain": f"UNCERTAIN (not published): {result.reason}",
                "lost": f"LOST - holding the last good pose: {result.reason}"}[result.state]
        self.ui.qualityLabel.text = text
        self.ui.qualityLabel.setStyleSheet({"trusted": "color: green", "uncertain": "color: orange"}.get(
            result.state, "color: red"))

    # ---- overlay ----
    def _afterPose(self, pose, state="trusted"):
        if self.ui.showOverlayCheckBox.checked:
            self._overlay(pose, state)

    def _overlay(self, pose, state="trusted"):
        output = self._output()
        if output.video_node is None:
            return
        rgb = slicer.util.arrayFromVolume(output.video_node)[0]
        names = [s.strip() for s in self.ui.overlaySegmentsLineEdit.text.split(",") if s.strip()] or None
        follow = self.ui.followCameraCheckBox.checked
        if follow:
            # drive the camera of the first 3D view, so that view looks through the endoscope
            viewNode = slicer.app.layoutManager().threeDWidget(0).mrmlViewNode()
            self.session.camera_node = slicer.modules.cameras.logic().GetViewActiveCameraNode(viewNode)
        self.session.overlay(rgb, pose, self._camera(rgb), names, opacity=self.ui.opacitySlider.value,
                             follow_camera=follow, state=state)

    def onOverlay(self):
        from SurgicalAICore.mrml.transforms import get_matrix

        with slicer.util.tryWithErrorDisplay("Overlay failed.", waitCursor=True):
            self._ensureTarget()
            self._overlay(get_matrix(self._output().transform_node))
