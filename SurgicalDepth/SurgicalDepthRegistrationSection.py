"""Registration and Overlay sections of the SurgicalDepth panel (Qt glue only).

Loads ``Resources/UI/SurgicalDepthRegistration.ui`` and drives the Qt-free
``SurgicalDepthLib.registration_scene.RegistrationSession`` with ``slicer.mrmlScene``; the point
cloud, video and camera-to-RAS nodes come from the SurgicalDepth logic's depth session.
"""
import os

import numpy as np
import qt
import slicer

INIT_METHODS = ["current", "tracking", "landmarks", "global", "global-full"]


class RegistrationSection:
    def __init__(self, parentLayout, logic):
        from SurgicalDepthLib.registration_scene import RegistrationSession

        self.logic = logic
        self.session = RegistrationSession(slicer.mrmlScene)
        self._targetKey = None
        path = os.path.join(os.path.dirname(__file__), "Resources", "UI", "SurgicalDepthRegistration.ui")
        self.widget = slicer.util.loadUI(path)
        parentLayout.addWidget(self.widget)
        self.ui = slicer.util.childWidgetVariables(self.widget)
        self.widget.setMRMLScene(slicer.mrmlScene)
        self.ui.targetTypeComboBox.currentIndexChanged.connect(self.onTargetTypeChanged)
        self.ui.targetSegmentationSelector.currentNodeChanged.connect(
            lambda node: self.ui.targetSegmentsSelector.setCurrentNode(node))
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
        output = getattr(getattr(self.logic, "session", None), "output", None)
        if output is None or output.cloud_node is None:
            raise ValueError("No point cloud yet: start depth (live or a recorded frame) first.")
        return output

    def _camera(self, rgb):
        from SurgicalDepthLib.camera import CameraIntrinsics

        camera = getattr(getattr(self.logic, "session", None), "camera", None)
        if camera is None or (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            camera = CameraIntrinsics.from_fov(rgb.shape[1], rgb.shape[0], 60.0)
        return camera

    # ---- target ----
    def onTargetTypeChanged(self, index):
        seg = index == 0
        for w in (self.ui.targetSegmentationLabel, self.ui.targetSegmentationSelector,
                  self.ui.targetSegmentsLabel, self.ui.targetSegmentsSelector):
            w.visible = seg
        for w in (self.ui.targetVolumeLabel, self.ui.targetVolumeSelector, self.ui.thresholdLabel,
                  self.ui.thresholdSpinBox):
            w.visible = not seg

    def _ensureTarget(self):
        if self.ui.targetTypeComboBox.currentIndex == 0:
            node = self.ui.targetSegmentationSelector.currentNode()
            ids = list(self.ui.targetSegmentsSelector.selectedSegmentIDs()) or None
            key = ("seg", node.GetID() if node else None, tuple(ids or ()), node.GetMTime() if node else 0)
            if key != self._targetKey:
                self.session.set_target_segmentation(node, ids)
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
        method = INIT_METHODS[index]
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
        from SurgicalDepthLib.registration_init import transform_node_to_world
        from SurgicalDepthLib.registration_scene import get_matrix

        method = INIT_METHODS[self.ui.initMethodComboBox.currentIndex]
        kwargs = {"method": method}
        if method == "tracking":
            tracker = self.ui.trackerTransformSelector.currentNode()
            handEye = self.ui.handEyeTransformSelector.currentNode()
            kwargs["tracker_to_ras"] = transform_node_to_world(tracker) if tracker else None
            kwargs["camera_to_tracker"] = transform_node_to_world(handEye) if handEye else None
        elif method == "landmarks":
            cloudPts = self._points(self.ui.landmarksCloudSelector.currentNode())
            if cloudPts is not None:
                # points were picked on the cloud as displayed (world): back into the camera frame
                inv = np.linalg.inv(get_matrix(transformNode))
                cloudPts = cloudPts @ inv[:3, :3].T + inv[:3, 3]
            kwargs["landmarks_cloud"] = cloudPts
            kwargs["landmarks_ct"] = self._points(self.ui.landmarksCTSelector.currentNode())
        return kwargs

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
            self._afterPose(result.matrix)
        except Exception as error:  # stop on the first error and say why, rather than every 100 ms
            self.ui.trackLiveButton.checked = False
            slicer.util.errorDisplay(f"Tracking stopped: {error}")

    # ---- overlay ----
    def _afterPose(self, pose):
        if self.ui.showOverlayCheckBox.checked:
            self._overlay(pose)

    def _overlay(self, pose):
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
                             follow_camera=follow)

    def onOverlay(self):
        from SurgicalDepthLib.registration_scene import get_matrix

        with slicer.util.tryWithErrorDisplay("Overlay failed.", waitCursor=True):
            self._ensureTarget()
            self._overlay(get_matrix(self._output().transform_node))
