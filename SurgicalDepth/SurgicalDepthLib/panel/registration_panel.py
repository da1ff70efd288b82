"""The SurgicalDepth panel's Registration and Overlay sections, Qt-free.

Binds to :class:`~SurgicalDepthLib.registration_session.RegistrationSession`'s public methods with the
cloud, transform and video the depth section's last run made (recorded or live: the nodes are references
in the depth section's parameter node), so clouds from "Process all frames" register like live ones.
The overlay draws on the video node when there is one, else on the newest live frame (live sources have
no video node). Tracking is a ``poll()`` the view calls from a timer; a failure stops it with a message.

Multi-frame fusion: every registered or tracked frame whose pose was published (trusted) is kept, its cloud
in camera coordinates with its camera-to-CT pose, in a bounded history (the session's last 100 frames);
uncertain and lost frames are not, since their pose is not believed. ``fuse()`` fuses the last N kept frames
into one "Fused surface" model in CT space. A recorded sweep is fused the same way: track (or register) over
the frames of "Process all frames" as they are scrubbed, and they fill the history as live frames do.
"""
from __future__ import annotations

import enum

import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.transforms import get_matrix
from SurgicalAICore.mrml.views import show_in_slice_views
from SurgicalAICore.panel.jobs import error_message
from SurgicalAICore.panel.parameters import Param, ParameterStore

MODULE = "SurgicalDepth"


class InitMethod(str, enum.Enum):
    """The start poses of ``registration.start_poses.INITIALISER_LABELS`` (a test keeps the two equal)."""

    CURRENT = "current"
    TRACKING = "tracking"
    LANDMARKS = "landmarks"
    GLOBAL = "global"
    GLOBAL_FULL = "global-full"


def init_method_labels() -> dict:
    """Display label per choice."""
    from SurgicalDepthLib.registration.start_poses import INITIALISER_LABELS

    return {InitMethod(key): label for key, label in INITIALISER_LABELS.items()}


class TargetType(str, enum.Enum):
    SEGMENTATION = "segmentation"
    THRESHOLD = "threshold"
    MODEL = "model"            # a surface mesh the user has (model node)


REGISTRATION_PARAMS = (
    Param("targetType", TargetType, TargetType.SEGMENTATION),
    Param("targetSegmentation", "node", node_class="vtkMRMLSegmentationNode"),
    Param("targetSegments", str, ""),  # comma-separated segment IDs; empty: all
    Param("targetVolume", "node", node_class="vtkMRMLScalarVolumeNode"),
    Param("thresholdHu", float, 300.0),
    Param("targetModel", "node", node_class="vtkMRMLModelNode"),
    Param("initMethod", InitMethod, InitMethod.CURRENT),
    Param("trackerTransform", "node", node_class="vtkMRMLTransformNode"),
    Param("handEyeTransform", "node", node_class="vtkMRMLTransformNode"),
    Param("landmarksCloud", "node", node_class="vtkMRMLMarkupsNode"),
    Param("landmarksCT", "node", node_class="vtkMRMLMarkupsNode"),
    Param("scale", bool, False),
    Param("showOverlay", bool, True),
    Param("overlaySegments", str, ""),  # comma-separated names; empty: all of the target
    Param("opacity", float, 0.35),
    Param("followCamera", bool, False),
    Param("fuseFrames", int, 10),       # fuse the last N kept (trusted) frames
    Param("fuseMethod", str, "tsdf"),   # tsdf (merges frames whose depth disagrees) or cells
    Param("fuseVoxelMm", float, 0.0),   # 0: from the depth (tsdf) or 1 mm (cells)
    Param("fuseMinFrames", int, 1),     # a surface point must be seen in this many frames
)


def _points(markups) -> np.ndarray | None:
    if markups is None:
        return None
    out = np.zeros((markups.GetNumberOfControlPoints(), 3))
    for i in range(len(out)):
        markups.GetNthControlPointPositionWorld(i, out[i])
    return out


class RegistrationPanel:
    """State and actions of the Registration and Overlay sections; ``depth`` is the :class:`DepthPanel`."""

    def __init__(self, scene, depth):
        from SurgicalDepthLib.registration_session import RegistrationSession

        self.scene = scene
        self.depth = depth
        self.session = RegistrationSession(scene, depth.session)
        self.params = ParameterStore(scene, MODULE, "Registration", REGISTRATION_PARAMS)
        self.tracking = False
        self.message = ""
        self.quality_text = ""
        self.trusted: bool | None = None
        self.state: str | None = None   # trusted / uncertain / lost (registration.trust)
        self._target_key = None
        self._last_cloud = None
        self.overlay_node = None  # the last overlay drawn (a face without slice views shows it its own way)

    # ---- inputs ----
    def cloud_and_transform(self):
        cloud, transform = self.depth.params.get("cloudNode"), self.depth.params.get("resultTransform")
        if cloud is None or transform is None or cloud.GetPolyData() is None:
            raise InputError("No point cloud yet: run depth (live or Process all frames) first.")
        return cloud, transform

    def ensure_target(self):
        values = self.params.values()
        if values["targetType"] is TargetType.SEGMENTATION:
            node = values["targetSegmentation"]
            if node is None:
                raise InputError("Choose the segmentation whose surface is the target.")
            ids = [s.strip() for s in values["targetSegments"].split(",") if s.strip()] or None
            key = ("seg", node.GetID(), tuple(ids or ()), node.GetMTime())
            if key != self._target_key:
                self.session.set_target_segmentation(node, ids)
        elif values["targetType"] is TargetType.MODEL:
            node = values["targetModel"]
            if node is None or node.GetPolyData() is None:
                raise InputError("Choose the surface model (mesh in mm) that is the target.")
            key = ("model", node.GetID(), node.GetPolyData().GetMTime())
            if key != self._target_key:
                self.session.set_target_model(node)
        else:
            node = values["targetVolume"]
            if node is None:
                raise InputError("Choose the CT volume whose isosurface is the target.")
            key = ("ct", node.GetID(), values["thresholdHu"], node.GetMTime())
            if key != self._target_key:
                self.session.set_target_threshold(node, values["thresholdHu"])
        self._target_key = key
        return self.session.target

    def _init_kwargs(self, transform) -> dict:
        values = self.params.values()
        method = values["initMethod"].value
        inputs = self.session.init_inputs(method, transform, values["trackerTransform"], values["handEyeTransform"],
                                          _points(values["landmarksCloud"]), _points(values["landmarksCT"]))
        return {"method": method, **inputs}

    # ---- actions ----
    def register(self):
        """Register the depth section's cloud to the target once; updates the cloud's transform."""
        self.ensure_target()
        cloud, transform = self.cloud_and_transform()
        result = self.session.register_once(cloud, transform, scale=self.params.get("scale"),
                                            **self._init_kwargs(transform))
        self._after_pose(result, cloud)
        return result

    def start_tracking(self) -> None:
        self.ensure_target()
        self.cloud_and_transform()
        self._last_cloud = None
        self.tracking = True
        self.message = "Tracking."

    def stop_tracking(self, why: str = "Tracking stopped.") -> None:
        self.tracking = False
        self.message = why
        self.session.tracker = None  # cancels a relocalising search in flight and stops its worker

    def poll(self):
        """One tracking step when the cloud changed since the last one (call from the GUI thread's timer)."""
        if not self.tracking:
            return None
        try:
            cloud, transform = self.cloud_and_transform()
            poly = cloud.GetPolyData()
            # hold the polydata itself: a VTK object's Python wrapper (and so its id) is not stable otherwise
            if self._last_cloud is not None and self._last_cloud[0] is poly and self._last_cloud[1] == poly.GetMTime():
                return None
            self._last_cloud = (poly, poly.GetMTime())
            result = self.session.track(cloud, transform, scale=self.params.get("scale"))
            self._after_pose(result, cloud)
            return result
        except Exception as error:  # stop on the first failure and say why, rather than every tick
            self.stop_tracking(f"Tracking stopped: {error_message(error)}")
            return None

    def _after_pose(self, result, cloud) -> None:
        quality = result.quality
        self.quality_text = (f"{quality.rms_mm:.2f} mm RMS, {100 * quality.inlier_fraction:.0f}% inliers"
                             + (f", scale {quality.scale:.3f}" if self.params.get("scale") else ""))
        # a tracker result carries the three-state trust; a single registration has only its fit's verdict
        self.state = getattr(result, "state", None) or ("trusted" if quality.trusted else "uncertain")
        reason = getattr(result, "reason", "") or quality.reason
        self.trusted = self.state == "trusted"
        searching = getattr(result, "relocalising", False)  # a background global search is in flight
        self.message = {"trusted": "trusted",
                        "uncertain": f"UNCERTAIN (not published{', relocalising' if searching else ''}): {reason}",
                        "lost": f"LOST - {'relocalising, ' if searching else ''}holding the last good pose: {reason}"
                        }[self.state]
        self.session.record(cloud, result.matrix, self.state)
        if self.params.get("showOverlay"):
            self.overlay(result.matrix, state=self.state)

    def frame(self) -> np.ndarray:
        """The video frame the cloud came from: the video node's, else the newest live frame."""
        from SurgicalAICore.mrml.volumes import array_from_image_data

        video = self.depth.params.get("videoNode")
        if video is not None and video.GetImageData() is not None:
            return array_from_image_data(video.GetImageData())[0]
        last = getattr(self.depth.session, "last_result", None)
        if last is not None and getattr(last, "rgb", None) is not None:
            return last.rgb
        raise InputError("No video frame to draw on yet: run depth first.")

    def overlay(self, pose=None, camera_node=None, state: str | None = None):
        """Draw the chosen target segments on the frame as the trust ``state`` allows (filled when trusted,
        outlines under a banner when uncertain, none when lost); shown in the slice views."""
        self.ensure_target()
        if pose is None:
            pose = get_matrix(self.cloud_and_transform()[1])
        rgb = self.frame()
        values = self.params.values()
        names = [s.strip() for s in values["overlaySegments"].split(",") if s.strip()] or None
        if camera_node is not None:
            self.session.camera_node = camera_node  # the face passes its 3-D view's camera to follow
        node = self.session.overlay(rgb, pose, self.session.camera_for(rgb), names, opacity=values["opacity"],
                                    follow_camera=values["followCamera"], state=state or self.state or "trusted")
        self.overlay_node = node
        if self.depth.show_in_views:
            show_in_slice_views(self.scene, node, {"Yellow": self.depth.params.get("depthNode")})
        return node

    def fuse(self, n_frames: int | None = None, voxel_mm: float | None = None, min_frames: int | None = None,
             method: str | None = None):
        """Fuse the last ``n_frames`` kept frames (settings by default) into the "Fused surface" model node."""
        values = self.params.values()
        n = values["fuseFrames"] if n_frames is None else n_frames
        node = self.session.fuse(n, (values["fuseVoxelMm"] if voxel_mm is None else voxel_mm) or None,
                                 values["fuseMinFrames"] if min_frames is None else min_frames,
                                 values["fuseMethod"] if method is None else method)
        fused = self.session.fused
        self.message = f"Fused {fused.n_frames} frames into {len(fused.points)} surface points."
        return node

    def register_fused(self):
        """Refine with the fused surface: register it to the target and, when the fit is trusted, correct the
        camera pose (and the kept frames and the fused model) by it; an untrusted fit changes nothing."""
        self.ensure_target()
        _, transform = self.cloud_and_transform()
        result = self.session.register_fused(scale=self.params.get("scale"))
        quality = result.quality
        self.quality_text = f"{quality.rms_mm:.2f} mm RMS, {100 * quality.inlier_fraction:.0f}% inliers (fused)"
        if quality.trusted:
            self.session.apply_correction(result.matrix, transform)
            self.message = "Refined with the fused surface: trusted."
        else:
            self.message = f"Fused surface fit not trusted, pose unchanged: {quality.reason}"
        return result

    def export_fused(self, path) -> None:
        """Write the last fused surface to ``path`` (.ply, .vtk or .vtp)."""
        self.session.export_fused(path)
        self.message = f"Fused surface written to {path}."

    @property
    def history_size(self) -> int:
        return len(self.session.history)

    def status(self) -> dict:
        return {"tracking": self.tracking, "message": self.message, "quality": self.quality_text,
                "trusted": self.trusted, "state": self.state, "fusable_frames": self.history_size}

    def shutdown(self) -> None:
        """Stop tracking and forget the frames kept for fusion (their poses belong to the closing scene)."""
        self.stop_tracking()
        self.session.clear_history()
