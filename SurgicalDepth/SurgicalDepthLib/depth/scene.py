"""Scene adapters of SurgicalDepth: depth maps, video frames and point clouds as MRML nodes.

* A frame or a depth map is a single-slice volume, 1 mm pixels, row 0 at the top of the slice view
  (IJK->RAS = diag(-1, -1, 1), as OpenIGTLink video arrives in Slicer).
* A point cloud is a model node in the camera frame (OpenCV, mm) under a camera-to-RAS linear
  transform node, identity until registration sets it.
* Recorded input becomes ONE sequence browser synchronising the video, depth-map and point-cloud
  sequences, so scrubbing shows the matching cloud.

Nodes are added to the scene only once complete; an error leaves the scene as it was.
"""
from __future__ import annotations


import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.volumes import image_data_from_array
from SurgicalAICore.mrml.transforms import vtk_matrix_from_numpy

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.depth.pointcloud import RGB_ARRAY

FRAME_IJK_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ROLE_ATTRIBUTE = "SurgicalDepth.Role"
DEPTH_COLOR_NAME = "SurgicalDepth depth"


def _set_geometry(node) -> None:
    node.SetIJKToRASMatrix(vtk_matrix_from_numpy(FRAME_IJK_TO_RAS))


def frame_volume(rgb: np.ndarray, name: str):
    """A vector volume node (not in any scene) holding an RGB frame."""
    import slicer

    node = slicer.vtkMRMLVectorVolumeNode()
    node.SetName(name)
    node.SetAndObserveImageData(image_data_from_array(np.asarray(rgb, np.uint8)[None]))
    _set_geometry(node)
    node.SetAttribute(ROLE_ATTRIBUTE, "video")
    return node


def depth_volume(depth_mm: np.ndarray, name: str):
    """A scalar volume node (not in any scene) holding a depth map in mm (0 = no depth)."""
    import slicer

    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    node.SetAndObserveImageData(image_data_from_array(np.asarray(depth_mm, np.float32)[None]))
    _set_geometry(node)
    node.SetAttribute(ROLE_ATTRIBUTE, "depth")
    return node


def cloud_model(poly, name: str):
    """A model node (not in any scene) holding a point cloud."""
    import slicer

    node = slicer.vtkMRMLModelNode()
    node.SetName(name)
    node.SetAndObservePolyData(poly)
    node.SetAttribute(ROLE_ATTRIBUTE, "pointcloud")
    return node


def camera_transform_node(scene, name: str = "Camera to RAS", node=None):
    """The camera-to-RAS transform node point clouds hang under (created as identity if ``node`` is None)."""
    import slicer

    if node is not None:
        if not node.IsA("vtkMRMLLinearTransformNode"):
            raise InputError(f"'{node.GetName()}' is not a linear transform node.")
        return node
    node = slicer.vtkMRMLLinearTransformNode()
    node.SetName(name)
    node.SetAttribute(ROLE_ATTRIBUTE, "camera_to_ras")
    scene.AddNode(node)
    return node


def _turbo_like(n: int = 256) -> np.ndarray:
    """A perceptually ordered near (warm) to far (cool) colour ramp; no matplotlib needed in Slicer."""
    stops = np.array([[0.0, 0.99, 0.91, 0.14], [0.25, 0.98, 0.55, 0.24], [0.5, 0.80, 0.28, 0.47],
                      [0.75, 0.38, 0.12, 0.60], [1.0, 0.05, 0.03, 0.38]])
    x = np.linspace(0, 1, n)
    return np.stack([np.interp(x, stops[:, 0], stops[:, c]) for c in (1, 2, 3)], axis=1)


def depth_color_node(scene):
    """The colour table depth maps are shown with (one per scene, created on first use)."""
    import slicer

    existing = scene.GetFirstNodeByName(DEPTH_COLOR_NAME)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    node = slicer.vtkMRMLColorTableNode()
    node.SetName(DEPTH_COLOR_NAME)
    node.SetTypeToUser()
    colours = _turbo_like(256)
    node.SetNumberOfColors(len(colours))
    node.GetLookupTable().SetTableRange(0, 255)
    for i, (r, g, b) in enumerate(colours):
        node.SetColor(i, f"{i}", float(r), float(g), float(b), 1.0)
    node.SetAttribute("Category", "SurgicalDepth")
    scene.AddNode(node)
    return node


def show_depth(node, color_node, depth_range=None) -> None:
    """Display a depth volume with the depth colours; 0 (no depth) transparent-black."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node.GetID())
    if depth_range is None:
        from SurgicalAICore.mrml.volumes import array_from_image_data

        d = array_from_image_data(node.GetImageData())
        valid = d[d > 0]
        depth_range = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
    lo, hi = depth_range
    display.SetAutoWindowLevel(0)
    display.SetWindowLevelMinMax(lo, max(hi, lo + 1e-3))
    display.SetApplyThreshold(1)
    display.SetLowerThreshold(1e-3)
    display.SetUpperThreshold(1e9)


def show_cloud(node, point_size: float = 3.0) -> None:
    """Display a point-cloud model with its RGB colours, points visible in 3D only."""
    import slicer

    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetActiveScalarName(RGB_ARRAY)
    display.SetScalarVisibility(1)
    display.SetScalarRangeFlag(slicer.vtkMRMLDisplayNode.UseDirectMapping)
    display.SetPointSize(point_size)
    display.SetRepresentation(0)  # points
    display.SetVisibility2D(0)
    display.SetVisibility(1)


class LiveSceneOutput:
    """The nodes a live stream updates in place: depth map, point cloud (under the camera transform)
    and, optionally, the video frame. Created together on the first update."""

    def __init__(self, scene, name: str = "Endoscope", transform_node=None, show_video: bool = True):
        self.scene = scene
        self.name = name
        self.transform_node = transform_node
        self.show_video = show_video
        self.depth_node = None
        self.cloud_node = None
        self.video_node = None
        self._range = None

    @property
    def nodes(self) -> list:
        return [n for n in (self.video_node, self.depth_node, self.cloud_node, self.transform_node) if n is not None]

    def update(self, rgb: np.ndarray | None, depth_mm: np.ndarray, poly) -> None:
        valid = depth_mm[depth_mm > 0]
        if valid.size:
            lo, hi = float(np.percentile(valid, 1)), float(np.percentile(valid, 99))
            # a stable colour scale: only widen, so the map does not flicker frame to frame
            self._range = (lo, hi) if self._range is None else (min(self._range[0], lo), max(self._range[1], hi))
        if self.depth_node is None:
            self._create(rgb, depth_mm, poly)
            return
        self.depth_node.SetAndObserveImageData(image_data_from_array(np.asarray(depth_mm, np.float32)[None]))
        if self._range is not None:
            self.depth_node.GetDisplayNode().SetWindowLevelMinMax(*self._range)
        self.cloud_node.SetAndObservePolyData(poly)
        if self.video_node is not None and rgb is not None:
            self.video_node.SetAndObserveImageData(image_data_from_array(np.asarray(rgb, np.uint8)[None]))

    def _create(self, rgb, depth_mm, poly) -> None:
        depth = depth_volume(depth_mm, f"{self.name} depth")
        cloud = cloud_model(poly, f"{self.name} point cloud")
        video = frame_volume(rgb, f"{self.name} video") if self.show_video and rgb is not None else None
        color = depth_color_node(self.scene)
        if self.transform_node is None:
            self.transform_node = camera_transform_node(self.scene, f"{self.name} camera to RAS")
        for node in (video, depth, cloud):
            if node is not None:
                self.scene.AddNode(node)
        cloud.SetAndObserveTransformNodeID(self.transform_node.GetID())
        show_depth(depth, color, self._range)
        show_cloud(cloud)
        if video is not None:
            video.CreateDefaultDisplayNodes()
        self.depth_node, self.cloud_node, self.video_node = depth, cloud, video

    def remove(self) -> None:
        for node in (self.video_node, self.depth_node, self.cloud_node):
            if node is not None and node.GetScene() is self.scene:
                self.scene.RemoveNode(node)
        self.video_node = self.depth_node = self.cloud_node = None


class RecordedSequenceBuilder:
    """Collects processed frames into video, depth and point-cloud sequences outside the scene;
    :meth:`commit` adds them with one browser (and the camera) to the scene in one go."""

    def __init__(self, name: str = "Endoscope", include_video: bool = True):
        import slicer

        self.name = name
        self.include_video = include_video
        self.sequences: dict[str, object] = {}
        for role in (("video",) if include_video else ()) + ("depth", "pointcloud"):
            seq = slicer.vtkMRMLSequenceNode()
            seq.SetName(f"{name} {role} sequence")
            seq.SetIndexName("time")
            seq.SetIndexUnit("s")
            seq.SetIndexType(seq.NumericIndex)
            seq.SetAttribute(ROLE_ATTRIBUTE, role)
            self.sequences[role] = seq
        self.count = 0
        self._lo, self._hi = np.inf, -np.inf

    def add(self, timestamp_s: float, rgb: np.ndarray, depth_mm: np.ndarray, poly) -> None:
        value = f"{timestamp_s:.6f}"
        if self.include_video:
            self.sequences["video"].SetDataNodeAtValue(frame_volume(rgb, f"{self.name} video"), value)
        self.sequences["depth"].SetDataNodeAtValue(depth_volume(depth_mm, f"{self.name} depth"), value)
        self.sequences["pointcloud"].SetDataNodeAtValue(cloud_model(poly, f"{self.name} point cloud"), value)
        valid = depth_mm[depth_mm > 0]
        if valid.size:
            self._lo = min(self._lo, float(np.percentile(valid, 1)))
            self._hi = max(self._hi, float(np.percentile(valid, 99)))
        self.count += 1

    def commit(self, scene, camera: CameraIntrinsics | None = None, transform_node=None) -> dict[str, object]:
        """Add the sequences, a browser showing item 0, the camera transform and the camera to ``scene``."""
        import slicer

        from SurgicalDepthLib.camera.scene import store_camera_in_scene

        if self.count == 0:
            raise InputError("No frame was processed; nothing to add to the scene.")
        browser = slicer.vtkMRMLSequenceBrowserNode()
        browser.SetName(f"{self.name} browser")
        color = depth_color_node(scene)
        transform = camera_transform_node(scene, f"{self.name} camera to RAS", transform_node)
        for seq in self.sequences.values():
            scene.AddNode(seq)
        scene.AddNode(browser)
        primary = self.sequences["video" if self.include_video else "depth"]
        browser.SetAndObserveMasterSequenceNodeID(primary.GetID())
        for _role, seq in self.sequences.items():
            if seq is not primary:
                browser.AddSynchronizedSequenceNodeID(seq.GetID())
        browser.SetSelectedItemNumber(0)
        logic = sequences_logic(scene)
        logic.UpdateProxyNodesFromSequences(browser)
        proxies = {role: browser.GetProxyNode(seq) for role, seq in self.sequences.items()}
        depth_range = (self._lo, self._hi) if np.isfinite(self._lo) else None
        show_depth(proxies["depth"], color, depth_range)
        proxies["pointcloud"].SetAndObserveTransformNodeID(transform.GetID())
        show_cloud(proxies["pointcloud"])
        if proxies.get("video") is not None and proxies["video"].GetDisplayNode() is None:
            proxies["video"].CreateDefaultDisplayNodes()
        camera_node = store_camera_in_scene(scene, camera, f"{self.name} camera") if camera is not None else None
        for seq in self.sequences.values():
            seq.AddDefaultStorageNode()
        return {"browser": browser, "sequences": dict(self.sequences), "proxies": proxies,
                "transform": transform, "camera": camera_node}


def sequences_logic(scene):
    """The Sequences logic registered with ``scene`` by SegmentationAILib.scene.new_scene, else a
    scene-less one: creating proxy nodes for a browser only needs the browser's own scene, and a
    second logic observing the app's scene would update proxies twice."""
    import slicer

    for logic in getattr(scene, "_surgicalai_logics", []):
        if logic.IsA("vtkSlicerSequencesLogic"):
            return logic
    return slicer.vtkSlicerSequencesLogic()
