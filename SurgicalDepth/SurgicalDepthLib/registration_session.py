"""What the Registration and Overlay sections hold between clicks: target, tracker, overlay; Qt-free.

It receives the :class:`~SurgicalDepthLib.depth_session.DepthSession` whose point cloud it registers, so
the camera that made the cloud is the camera the overlay is drawn with (one decision, in the depth session).

It also keeps the history multi-frame fusion draws on: the last ``HISTORY_FRAMES`` frames whose pose was
published (trusted), each a float32 copy of the cloud in camera coordinates and its camera-to-CT pose.
Memory: 100 frames of the default 20 000-point budget are 100 x 20 000 x 3 x 4 B = 24 MB.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.transforms import get_matrix, set_matrix, transform_node_to_world, transform_points
from SurgicalDepthLib.registration.register import (
    RegistrationResult,
    _check_transform_node,
    cloud_points_from_model_node,
    register_cloud,
)
from SurgicalDepthLib.registration.target import RegistrationTarget

HISTORY_FRAMES = 100
FUSED_NAME = "Fused surface"


@dataclass
class HistoryFrame:
    points: np.ndarray   # (N, 3) float32, camera frame (the cloud node's own coordinates)
    pose: np.ndarray     # camera-to-CT (RAS) 4x4, as published
    state: str           # always "trusted" today: only published poses are kept


class RegistrationSession:
    """What the Registration and Overlay sections hold between clicks, Qt-free: the target, the
    tracker, the overlay structures and nodes. The panel calls these methods on the GUI thread."""

    def __init__(self, scene, depth_session=None):
        self.scene = scene
        self.depth_session = depth_session
        self.target: RegistrationTarget | None = None
        self.target_surfaces: dict = {}
        self.tracker = None
        self.last: RegistrationResult | None = None
        self.overlay_node = None
        self.camera_node = None
        self.history: deque[HistoryFrame] = deque(maxlen=HISTORY_FRAMES)
        self.fused = None
        self.fused_node = None

    @property
    def tracker(self):
        return self._tracker

    @tracker.setter
    def tracker(self, tracker) -> None:
        """Replacing (or dropping) the tracker stops its background search and worker thread."""
        old = getattr(self, "_tracker", None)
        if old is not None and old is not tracker:
            old.close()
        self._tracker = tracker

    # ---- what the depth session made ----
    def depth_output(self):
        """The depth session's scene output (cloud, camera-to-CT transform, video nodes)."""
        output = getattr(self.depth_session, "output", None)
        if output is None or output.cloud_node is None:
            raise InputError("No point cloud yet: start depth (live or a recorded frame) first.")
        return output

    def camera_for(self, rgb: np.ndarray):
        """The intrinsics the depth pipeline used for frames of this size (calibration, scaled, or the
        model's field of view): the overlay must project with the camera that made the cloud."""
        if self.depth_session is None:
            raise InputError("Registration needs the depth session that made the point cloud.")
        return self.depth_session.camera_for(rgb.shape[1], rgb.shape[0])

    def init_inputs(
        self,
        method: str,
        transform_node=None,
        tracker_node=None,
        hand_eye_node=None,
        landmarks_world=None,
        landmarks_ct=None,
    ) -> dict:
        """Keyword inputs of ``method`` from scene nodes: tracker poses, or landmarks picked on the cloud
        as displayed (world) and brought back into the camera frame."""
        inputs: dict = {}
        if method == "tracking":
            inputs["tracker_to_ras"] = transform_node_to_world(tracker_node) if tracker_node else None
            inputs["camera_to_tracker"] = transform_node_to_world(hand_eye_node) if hand_eye_node else None
        elif method == "landmarks":
            if landmarks_world is not None and transform_node is not None:
                landmarks_world = transform_points(np.linalg.inv(get_matrix(transform_node)), landmarks_world)
            inputs["landmarks_cloud"] = landmarks_world
            inputs["landmarks_ct"] = landmarks_ct
        return inputs

    def set_target_segmentation(self, segmentation_node, segment_names=None) -> RegistrationTarget:
        from SurgicalDepthLib.registration.target import append_polydata, segment_surfaces, target_from_polydata

        surfaces = segment_surfaces(segmentation_node, segment_names)
        self.target = target_from_polydata(
            append_polydata(surfaces.values()), name=segmentation_node.GetName(), segments=surfaces
        )
        self.target_surfaces = surfaces
        self.tracker = None
        return self.target

    def set_target_threshold(self, volume_node, threshold_hu: float) -> RegistrationTarget:
        from SurgicalDepthLib.registration.target import target_from_threshold

        self.target = target_from_threshold(volume_node, threshold_hu)
        self.target_surfaces = {self.target.name: self.target.polydata}
        self.tracker = None
        return self.target

    def set_target_model(self, model_node, allow_open: bool = False) -> RegistrationTarget:
        """A surface mesh the user has (a model node, e.g. a loaded .stl): checked for emptiness, holes,
        non-manifold edges and units first; the scene is not touched."""
        from SurgicalDepthLib.registration.meshes import model_node_polydata, target_from_mesh

        name = model_node.GetName() if model_node is not None else "model"
        poly = model_node_polydata(model_node)
        self.target = target_from_mesh(poly, name, allow_open=allow_open)
        self.target_surfaces = {name: poly}
        self.tracker = None
        return self.target

    def register_once(
        self,
        cloud_node,
        transform_node,
        method: str = "current",
        scale: bool = False,
        device: str = "cpu",
        **init_kwargs,
    ) -> RegistrationResult:
        if self.target is None:
            raise InputError("Choose a registration target (segmentation or CT threshold) first.")
        self.last = register_cloud(
            cloud_points_from_model_node(cloud_node),
            self.target,
            transform_node,
            method=method,
            scale=scale,
            device=device,
            **init_kwargs,
        )
        self.tracker = None
        return self.last

    def track(self, cloud_node, transform_node, scale: bool = False, device: str = "cpu"):
        """One frame-to-frame update from the transform node's current pose (Track live). A frame the tracker
        cannot explain returns at once, holding the last good pose, while the relocalising global search runs in
        a worker thread (``result.relocalising``); a later frame takes and verifies what it found."""
        from SurgicalDepthLib.registration.tracking import FrameTracker

        if self.target is None:
            raise InputError("Choose a registration target (segmentation or CT threshold) first.")
        _check_transform_node(transform_node)
        if self.tracker is None or self.tracker.scale != scale or self.tracker.transform_node is not transform_node:
            self.tracker = FrameTracker(
                self.target, get_matrix(transform_node), scale=scale, transform_node=transform_node, device=device,
                background=True,
            )
        return self.tracker.update(cloud_points_from_model_node(cloud_node))

    def overlay(
        self,
        rgb: np.ndarray,
        pose: np.ndarray,
        camera,
        segment_names=None,
        opacity: float = 0.35,
        follow_camera: bool = False,
        state: str = "trusted",
    ):
        """Overlay the chosen target segments on ``rgb``; updates (or creates) the overlay image node.

        ``state`` is the registration's trust (a tracker result's ``state``): an uncertain pose is drawn as
        neutral outlines under a warning banner, a lost one not at all (the banner says the last good pose
        is held), and the 3D camera follows trusted poses only."""
        from SurgicalDepthLib.overlay.follow_camera import endoscope_camera_node, follow_camera as follow
        from SurgicalDepthLib.overlay.composite import overlay_volume_node, structures_from_surfaces
        from SurgicalDepthLib.overlay.trust_overlay import overlay_for_state

        if not self.target_surfaces:
            raise InputError("Choose a registration target first: its segments are what is overlaid.")
        chosen = {k: v for k, v in self.target_surfaces.items() if not segment_names or k in segment_names}
        if not chosen:
            raise InputError("None of the chosen segments is in the registration target.")
        key = (id(self.target), tuple(sorted(chosen)))
        if getattr(self, "_structures_key", None) != key:  # decimate once per choice, not per frame
            self._structures = structures_from_surfaces(chosen)
            self._structures_key = key
        img = overlay_for_state(rgb, self._structures, pose, camera, state, opacity=opacity)
        if self.overlay_node is not None and self.overlay_node.GetScene() is not self.scene:
            self.overlay_node = None
        self.overlay_node = overlay_volume_node(self.scene, img, "CT structures on video", node=self.overlay_node)
        if follow_camera and state == "trusted":
            if self.camera_node is None or self.camera_node.GetScene() is not self.scene:
                self.camera_node = endoscope_camera_node(self.scene)
            follow(self.camera_node, pose, camera)
        return self.overlay_node

    # ---- multi-frame fusion ----
    def record(self, cloud_node, pose: np.ndarray, state: str) -> bool:
        """Keep this frame for fusion when its pose was published (``state`` trusted); an uncertain or lost
        frame is left out, since its pose is not believed and would smear the fused surface. Returns kept."""
        if state != "trusted":
            return False
        points = cloud_points_from_model_node(cloud_node).astype(np.float32)
        self.history.append(HistoryFrame(points, np.array(pose, float), state))
        return True

    def fuse(self, n_frames: int, voxel_mm: float | None = None, min_frames: int = 1, method: str = "tsdf"):
        """Fuse the last ``n_frames`` kept frames into the "Fused surface" model node (CT/RAS coordinates,
        shown as points in 3-D; the same node is updated on the next fuse) with ``method`` (``tsdf`` or
        ``cells``, see :func:`~SurgicalDepthLib.registration.fusion.fuse_frames`). Nothing in the scene changes
        when fusion refuses its input."""
        from SurgicalDepthLib.registration.fusion import fuse_frames, fused_polydata

        if n_frames < 2:
            raise InputError(f"Fuse at least 2 frames, not {n_frames}.")
        frames = list(self.history)[-n_frames:]
        if len(frames) < 2:
            raise InputError(f"Fusion needs at least two registered (trusted) frames; {len(self.history)} kept "
                             "so far: register or track more frames first.")
        fused = fuse_frames([f.points for f in frames], [f.pose for f in frames], method, voxel_mm, min_frames)
        if len(fused.points) == 0:
            raise InputError(f"No surface point was seen in {min_frames} frames: lower the minimum frames.")
        self.fused = fused
        self.fused_node = self._fused_model(fused_polydata(fused))
        return self.fused_node

    def _fused_model(self, poly):
        import slicer

        from SurgicalDepthLib.depth.scene import ROLE_ATTRIBUTE

        node = self.fused_node
        if node is None or node.GetScene() is not self.scene:
            node = slicer.vtkMRMLModelNode()
            node.SetName(self.scene.GenerateUniqueName(FUSED_NAME))
            node.SetAttribute(ROLE_ATTRIBUTE, "fused")
            self.scene.AddNode(node)
        node.SetAndObservePolyData(poly)
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            display.SetRepresentation(0)  # points
            display.SetPointSize(3.0)
            display.SetColor(0.2, 0.8, 1.0)
            display.SetScalarVisibility(0)
            display.SetVisibility2D(0)
        node.GetDisplayNode().SetVisibility(1)
        return node

    def register_fused(self, scale: bool = False) -> RegistrationResult:
        """Register the last fused surface (already in CT space, so from the identity) to the target: the
        result's matrix is the CT-space correction of every fused frame's pose. The scene is not touched."""
        if self.fused is None:
            raise InputError("Nothing fused yet: fuse the last frames first.")
        if self.target is None:
            raise InputError("Choose a registration target (segmentation or CT threshold) first.")
        return register_cloud(self.fused.points, self.target, method="current", current=np.eye(4), scale=scale)

    def apply_correction(self, correction: np.ndarray, transform_node) -> None:
        """Move the camera pose, the kept frames' poses and the fused surface by a CT-space ``correction``;
        the tracker restarts from the corrected pose."""
        set_matrix(transform_node, correction @ get_matrix(transform_node))
        for frame in self.history:
            frame.pose = correction @ frame.pose
        if self.fused is not None:
            self.fused.points = self.fused.points @ correction[:3, :3].T + correction[:3, 3]
            if self.fused_node is not None and self.fused_node.GetScene() is self.scene:
                from SurgicalDepthLib.registration.fusion import fused_polydata

                self.fused_node.SetAndObservePolyData(fused_polydata(self.fused))
        self.tracker = None

    def export_fused(self, path) -> None:
        """Write the last fused surface as ``.ply``/``.vtk``/``.vtp`` (atomic)."""
        from SurgicalDepthLib.registration.fusion import write_fused

        if self.fused is None:
            raise InputError("Nothing fused yet: fuse the last frames first.")
        write_fused(self.fused, path)

    def clear_history(self) -> None:
        self.history.clear()
        self.fused = None
