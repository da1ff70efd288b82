"""The Qt-free endoscopy session behind the web Endoscopy panel: depth and point clouds for the frames
of a video or frame folder (computed in a worker thread), registration to a CT target and the
CT-structure overlay, on the same scene as the planning session. Replaceable by the shared panel logic."""
from __future__ import annotations

import base64

import cv2
import numpy as np

from SurgicalAICore.errors import InputError

from surgicalai.web.jobs import Job
from surgicalai.web.security import FRAME_SUFFIXES, VIDEO_SUFFIXES, DataRoot, suffix_of


class EndoscopySession:
    def __init__(self, scene, data: DataRoot):
        self.scene = scene
        self.data = data
        self.results: list = []
        self.cloud_nodes: list = []
        self.transform = None
        self._registration = None
        self.overlay_png: str = ""

    @property
    def registration(self):
        # imported on first use: the depth and registration stack pulls in torch (seconds at start)
        if self._registration is None:
            from SurgicalDepthLib.registration_session import RegistrationSession

            self._registration = RegistrationSession(self.scene)
        return self._registration

    def sources(self) -> list[str]:
        return [e["path"] for e in self.data.listing(VIDEO_SUFFIXES + FRAME_SUFFIXES)
                if (e["kind"] == "file" and suffix_of(e["path"], VIDEO_SUFFIXES))
                or (e["kind"] == "folder" and any(suffix_of(p.name, FRAME_SUFFIXES)
                                                  for p in self.data.resolve(e["path"]).iterdir()))]

    def start_depth(self, relative: str, max_frames: int = 5, device: str = "auto") -> Job:
        """Depth maps and clouds for the first ``max_frames`` frames, computed off the server thread."""
        if not relative:
            raise InputError("Choose a video or a frame folder first.")
        path = self.data.resolve(relative)
        if path.is_file() and not suffix_of(path.name, VIDEO_SUFFIXES):
            raise InputError(f"'{relative}' is not a video ({', '.join(VIDEO_SUFFIXES)}) or a frame folder.")
        max_frames = int(max_frames)
        if not 1 <= max_frames <= 200:
            raise InputError("Frames must be between 1 and 200.")

        def work(progress, cancel):
            from SurgicalDepthLib.depth.pipeline import FrameProcessor
            from SurgicalDepthLib.depth.loaders import load_depth_model as load_model
            from SurgicalDepthLib.video.sources import open_source

            processor = FrameProcessor(load_model(None, device=device), max_points=20000)
            results = []
            with open_source(str(path)) as source:
                for frame in source:
                    cancel.raise_if_cancelled()
                    results.append(processor.process(frame))
                    progress(len(results) / max_frames, f"frame {len(results)} of {max_frames}")
                    if len(results) >= max_frames:
                        break
            if not results:
                raise InputError(f"'{relative}' has no readable frames.")
            return results

        return Job("depth", work, self._adopt)

    def _adopt(self, results) -> str:
        """Clouds into the scene under one camera-to-RAS transform (server thread)."""
        from SurgicalDepthLib.depth.scene import camera_transform_node, cloud_model, show_cloud

        for node in self.cloud_nodes:
            if node.GetScene() is self.scene:
                self.scene.RemoveNode(node)
        if self.transform is None or self.transform.GetScene() is not self.scene:
            self.transform = camera_transform_node(self.scene)
        self.cloud_nodes = []
        for r in results:
            node = cloud_model(r.poly, self.scene.GenerateUniqueName(f"Cloud {r.index:04d}"))
            self.scene.AddNode(node)
            show_cloud(node)
            node.SetAndObserveTransformNodeID(self.transform.GetID())
            self.cloud_nodes.append(node)
        self.results = results
        self.show_frame(0)
        return f"{len(results)} frames: depth maps and point clouds in the 3-D view"

    def show_frame(self, index: int) -> None:
        if not self.results:
            return
        index = int(np.clip(index, 0, len(self.results) - 1))
        for i, node in enumerate(self.cloud_nodes):
            node.GetDisplayNode().SetVisibility(int(i == index))

    def frame_images(self, index: int) -> dict:
        """The frame and its depth map as PNG data URLs for the page."""
        if not self.results:
            return {}
        r = self.results[int(np.clip(index, 0, len(self.results) - 1))]
        depth = r.depth_mm
        valid = depth > 0
        scaled = np.zeros(depth.shape, np.uint8)
        if valid.any():
            lo, hi = np.percentile(depth[valid], [2, 98])
            scaled[valid] = np.clip(255 * (depth[valid] - lo) / max(hi - lo, 1e-6), 0, 255).astype(np.uint8)
        coloured = cv2.applyColorMap(255 - scaled, cv2.COLORMAP_TURBO)
        coloured[~valid] = 0
        return {"frame": png_url(r.rgb), "depth": png_url(coloured[..., ::-1]),
                "depth_range": [float(depth[valid].min()), float(depth[valid].max())] if valid.any() else []}

    def set_target(self, segmentation_node, volume_node, threshold_hu: float) -> str:
        if segmentation_node is not None:
            target = self.registration.set_target_segmentation(segmentation_node)
        elif volume_node is not None:
            target = self.registration.set_target_threshold(volume_node, float(threshold_hu))
        else:
            raise InputError("Load a CT (and segment it) before choosing a registration target.")
        return f"Target: {target.name} ({len(target.points)} surface points)"

    def register(self, index: int, method: str) -> dict:
        if not self.cloud_nodes:
            raise InputError("Run depth on a video first: registration needs a point cloud.")
        node = self.cloud_nodes[int(np.clip(index, 0, len(self.cloud_nodes) - 1))]
        result = self.registration.register_once(node, self.transform, method=method)
        q = result.quality
        return {"rms_mm": round(q.rms_mm, 2), "inliers": round(q.inlier_fraction, 2), "trusted": q.trusted,
                "reason": q.reason}

    def overlay(self, index: int) -> str:
        if not self.results:
            raise InputError("Run depth on a video first.")
        from SurgicalAICore.mrml.volumes import array_from_image_data
        from SurgicalAICore.mrml.transforms import get_matrix

        r = self.results[int(np.clip(index, 0, len(self.results) - 1))]
        node = self.registration.overlay(r.rgb, get_matrix(self.transform), r.camera)
        image = array_from_image_data(node.GetImageData())
        self.overlay_png = png_url(np.ascontiguousarray(image.reshape(image.shape[-3:])[..., :3]))
        return self.overlay_png


def png_url(rgb: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise InputError("Could not encode the image.")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()
