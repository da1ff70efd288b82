"""Register a camera-frame point cloud to a CT target and put the result on a transform node.

The camera-to-CT transform node (the one the point cloud model hangs under) is changed only when
the registration ran to the end; on any error it keeps its matrix. The fit statistics are kept on
the node as attributes so the panel and a saved scene show them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from SegmentationAILib.errors import InputError
from SegmentationAILib.progress import CancelToken, Progress

from .icp import ICPResult, check_cloud, icp
from .registration_init import global_init, init_from_tracking, landmark_transform
from .registration_target import RegistrationTarget

ATTRIBUTE_PREFIX = "SurgicalAI.Registration."


@dataclass
class RegistrationQuality:
    rms_mm: float
    inlier_fraction: float
    scale: float
    well_constrained: bool
    trusted: bool
    reason: str   # why not trusted ('' when trusted)


def assess(result: ICPResult, max_rms_mm: float = 1.5, min_inlier_fraction: float = 0.3,
           scale_range=(0.5, 2.0)) -> RegistrationQuality:
    """Quality flag: a registration is trusted only when it fits tightly, most of the cloud supports
    it, the surface pins all degrees of freedom and any scale is plausible."""
    reasons = []
    if not np.isfinite(result.rms_mm) or result.rms_mm > max_rms_mm:
        reasons.append(f"residual {result.rms_mm:.2f} mm > {max_rms_mm:g} mm")
    if result.inlier_fraction < min_inlier_fraction:
        reasons.append(f"only {100 * result.inlier_fraction:.0f}% of the points match the surface")
    if not result.well_constrained:
        reasons.append("the surface does not pin the pose (it can slide)")
    if not scale_range[0] <= result.scale <= scale_range[1]:
        reasons.append(f"scale {result.scale:.2f} is implausible")
    return RegistrationQuality(result.rms_mm, result.inlier_fraction, result.scale, result.well_constrained,
                               not reasons, "; ".join(reasons))


def get_matrix(transform_node) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToParent(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def set_matrix(transform_node, matrix: np.ndarray) -> None:
    import vtk

    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(matrix[r, c]))
    transform_node.SetMatrixTransformToParent(m)


def _check_transform_node(node):
    if node is None or not node.IsA("vtkMRMLLinearTransformNode"):
        raise InputError("Registration needs a linear transform node (camera to CT) to write its result to.")
    return node


@dataclass
class RegistrationResult:
    matrix: np.ndarray            # camera-to-CT (RAS) 4x4
    initial: np.ndarray
    quality: RegistrationQuality
    icp: ICPResult
    method: str


def initial_pose(cloud: np.ndarray, target: RegistrationTarget, method: str, *, current: Optional[np.ndarray] = None,
                 tracker_to_ras: Optional[np.ndarray] = None, camera_to_tracker: Optional[np.ndarray] = None,
                 landmarks_cloud: Optional[np.ndarray] = None, landmarks_ct: Optional[np.ndarray] = None,
                 scale: bool = False, budget_s: float = 1.0, device: Optional[str] = "cpu") -> np.ndarray:
    """Starting camera-to-CT pose by ``method``: 'current', 'tracking', 'landmarks', 'global' (around
    ``current`` when given) or 'global-full' (no prior)."""
    if method == "current":
        return np.eye(4) if current is None else np.asarray(current, float)
    if method == "tracking":
        if tracker_to_ras is None:
            raise InputError("Initialisation from tracking needs a tracking transform.")
        return init_from_tracking(tracker_to_ras, camera_to_tracker)
    if method == "landmarks":
        if landmarks_cloud is None or landmarks_ct is None:
            raise InputError("Initialisation from landmarks needs points on the video/cloud and on the CT.")
        return landmark_transform(landmarks_cloud, landmarks_ct, scale=scale)
    if method in ("global", "global-full"):
        prior = current if method == "global" else None
        return global_init(cloud, target, prior=prior, budget_s=budget_s, scale=scale, device=device).matrix
    raise InputError(f"Unknown initialisation '{method}': use current, tracking, landmarks, global or global-full.")


def register_cloud(cloud: np.ndarray, target: RegistrationTarget, transform_node=None, *, method: str = "current",
                   scale: bool = False, max_rms_mm: float = 1.5, device: Optional[str] = "cpu",
                   progress=None, cancel: Optional[CancelToken] = None, **init_kwargs) -> RegistrationResult:
    """Register a camera-frame ``cloud`` (N, 3, mm) to ``target``; write camera-to-CT into
    ``transform_node`` (if given) only when finished. ``init_kwargs`` go to :func:`initial_pose`
    (when ``current`` is not given it is read from the transform node)."""
    prog = Progress.of(progress, cancel)
    if transform_node is not None:
        _check_transform_node(transform_node)
        init_kwargs.setdefault("current", get_matrix(transform_node))
    if target is None:
        raise InputError("No registration target (CT surface) was given.")
    pts = check_cloud(cloud)
    prog.step(0.0, "initialising")
    init = initial_pose(pts, target, method, scale=scale, device=device, **init_kwargs)
    prog.step(0.4, "refining (ICP)")
    result = icp(pts, target, init, scale=scale, device=device)
    quality = assess(result, max_rms_mm=max_rms_mm)
    prog.step(0.95, "updating the scene")
    if transform_node is not None:
        set_matrix(transform_node, result.matrix)
        for key, value in asdict(quality).items():
            transform_node.SetAttribute(ATTRIBUTE_PREFIX + key, str(value))
    prog.step(1.0, "registered" if quality.trusted else f"registered, not trusted: {quality.reason}")
    return RegistrationResult(result.matrix, init, quality, result, method)


def cloud_points_from_model_node(model_node) -> np.ndarray:
    """Camera-frame points (N, 3) of a point-cloud model node (its own coordinates, not world)."""
    from vtk.util import numpy_support

    if model_node is None or model_node.GetPolyData() is None or model_node.GetPolyData().GetPoints() is None:
        raise InputError("No point cloud yet: run depth on a frame first.")
    return numpy_support.vtk_to_numpy(model_node.GetPolyData().GetPoints().GetData()).astype(np.float64)


class RegistrationSession:
    """What the Registration and Overlay sections hold between clicks, Qt-free: the target, the
    tracker, the overlay structures and nodes. The panel calls these methods on the GUI thread."""

    def __init__(self, scene):
        self.scene = scene
        self.target: Optional[RegistrationTarget] = None
        self.target_surfaces: dict = {}
        self.tracker = None
        self.last: Optional[RegistrationResult] = None
        self.overlay_node = None
        self.camera_node = None

    def set_target_segmentation(self, segmentation_node, segment_names=None) -> RegistrationTarget:
        from .registration_target import append_polydata, segment_surfaces, target_from_polydata

        surfaces = segment_surfaces(segmentation_node, segment_names)
        self.target = target_from_polydata(append_polydata(surfaces.values()), name=segmentation_node.GetName(),
                                           segments=surfaces)
        self.target_surfaces = surfaces
        self.tracker = None
        return self.target

    def set_target_threshold(self, volume_node, threshold_hu: float) -> RegistrationTarget:
        from .registration_target import target_from_threshold

        self.target = target_from_threshold(volume_node, threshold_hu)
        self.target_surfaces = {self.target.name: self.target.polydata}
        self.tracker = None
        return self.target

    def register_once(self, cloud_node, transform_node, method: str = "current", scale: bool = False,
                      device: str = "cpu", **init_kwargs) -> RegistrationResult:
        if self.target is None:
            raise InputError("Choose a registration target (segmentation or CT threshold) first.")
        self.last = register_cloud(cloud_points_from_model_node(cloud_node), self.target, transform_node,
                                   method=method, scale=scale, device=device, **init_kwargs)
        self.tracker = None
        return self.last

    def track(self, cloud_node, transform_node, scale: bool = False, device: str = "cpu"):
        """One frame-to-frame update from the transform node's current pose (Track live)."""
        from .tracking import FrameTracker

        if self.target is None:
            raise InputError("Choose a registration target (segmentation or CT threshold) first.")
        _check_transform_node(transform_node)
        if self.tracker is None or self.tracker.scale != scale or self.tracker.transform_node is not transform_node:
            self.tracker = FrameTracker(self.target, get_matrix(transform_node), scale=scale,
                                        transform_node=transform_node, device=device)
        return self.tracker.update(cloud_points_from_model_node(cloud_node))

    def overlay(self, rgb: np.ndarray, pose: np.ndarray, camera, segment_names=None, opacity: float = 0.35,
                follow_camera: bool = False):
        """Overlay the chosen target segments on ``rgb``; updates (or creates) the overlay image node."""
        from .camera_follow import endoscope_camera_node, follow_camera as follow
        from .overlay import overlay_frame, overlay_volume_node, structures_from_surfaces

        if not self.target_surfaces:
            raise InputError("Choose a registration target first: its segments are what is overlaid.")
        chosen = {k: v for k, v in self.target_surfaces.items() if not segment_names or k in segment_names}
        if not chosen:
            raise InputError("None of the chosen segments is in the registration target.")
        key = (id(self.target), tuple(sorted(chosen)))
        if getattr(self, "_structures_key", None) != key:  # decimate once per choice, not per frame
            self._structures = structures_from_surfaces(chosen)
            self._structures_key = key
        img, _ = overlay_frame(rgb, self._structures, pose, camera, opacity=opacity)
        if self.overlay_node is not None and self.overlay_node.GetScene() is not self.scene:
            self.overlay_node = None
        self.overlay_node = overlay_volume_node(self.scene, img, "CT structures on video", node=self.overlay_node)
        if follow_camera:
            if self.camera_node is None or self.camera_node.GetScene() is not self.scene:
                self.camera_node = endoscope_camera_node(self.scene)
            follow(self.camera_node, pose, camera)
        return self.overlay_node
