"""What the SurgicalDepth panel holds between clicks: camera, model, point budget, live processing."""

from __future__ import annotations


from SurgicalAICore.errors import InputError, SurgicalAIError

from SurgicalDepthLib.depth.pipeline import FrameProcessor
from SurgicalDepthLib.depth.live import LiveProcessor, LiveStats


class DepthSession:
    """Everything the SurgicalDepth panel holds between clicks, Qt-free: camera, model, point budget,
    a running live processor and its scene output. The Slicer face's Logic is a thin wrapper of this,
    so the panel's behaviour is tested here on a real scene.

    The scene is touched only by the methods called from the GUI thread (``update``, ``process_all``,
    the camera methods).
    """

    def __init__(self, scene, name: str = "Endoscope"):
        self.scene = scene
        self.name = name
        self.camera = None
        self.camera_node = None
        self.model = None
        self.model_key = None
        self.max_points = 20000
        self.live: LiveProcessor | None = None
        self.output = None
        self.last_result = None  # the newest live result shown (its frame is what the overlay draws on)

    # ---- camera ----
    def set_camera(self, camera) -> None:
        """Use ``camera`` (None: a default pinhole) and keep it in the scene, so it is saved with it."""
        from SurgicalDepthLib.camera.scene import store_camera_in_scene

        self.camera = camera
        if camera is not None:
            node = (
                self.camera_node if self.camera_node is not None and self.camera_node.GetScene() is self.scene else None
            )
            self.camera_node = store_camera_in_scene(self.scene, camera, f"{self.name} camera", node)
        self._refresh_processor()

    def load_camera(self, path):
        from SurgicalDepthLib.camera.files import load_camera

        camera = load_camera(path)
        self.set_camera(camera)
        return camera

    def save_camera(self, path):
        from SurgicalDepthLib.camera.files import save_camera

        if self.camera is None:
            raise InputError("No camera to save: load or calibrate one first.")
        return save_camera(self.camera, path)

    def restore_camera(self) -> bool:
        """Take the camera stored in the scene (after loading a .mrb); False if there is none."""
        from SurgicalDepthLib.camera.scene import camera_from_node, camera_nodes

        nodes = camera_nodes(self.scene)
        if not nodes:
            return False
        self.camera_node = nodes[-1]
        self.camera = camera_from_node(self.camera_node)
        self._refresh_processor()
        return True

    def calibrate(self, source, pattern, square_mm: float, max_frames: int = 60, progress=None, cancel=None):
        """Checkerboard calibration from (up to ``max_frames`` evenly spread) frames of ``source``."""
        from SurgicalDepthLib.camera.calibration import calibrate_checkerboard
        from SurgicalDepthLib.video.sources import open_source

        src = open_source(source)
        try:
            if src.is_live:
                raise InputError("Calibrate from a recorded source (file, folder or sequence).")
            step = max(1, (src.frame_count or max_frames) // max_frames)
            frames = [f.rgb for f in src if f.index % step == 0][:max_frames]
        finally:
            src.close()
        result = calibrate_checkerboard(frames, pattern, square_mm, progress=progress, cancel=cancel)
        self.set_camera(result.camera)
        return result

    # ---- model ----
    def set_model(self, path=None, device: str = "auto", max_points: int | None = None) -> None:
        """Load the depth model (None: bundled) unless it is the one already loaded."""
        from SurgicalDepthLib.depth.loaders import load_depth_model

        key = (str(path) if path else None, device)
        if self.model is None or key != self.model_key:
            self.model = load_depth_model(path, device)
            self.model_key = key
        if max_points is not None:
            if max_points < 1:
                raise InputError(f"The point budget must be at least 1, got {max_points}.")
            self.max_points = int(max_points)
        self._refresh_processor()

    def use_model(self, estimator) -> None:
        """Use an already loaded depth estimator (anything with ``predict(rgb) -> depth mm``)."""
        if estimator is None or not hasattr(estimator, "predict"):
            raise InputError("A depth estimator needs a predict(rgb) method.")
        self.model = estimator
        self.model_key = ("object", id(estimator))
        self._refresh_processor()

    def processor(self) -> FrameProcessor:
        if self.model is None:
            self.set_model()
        return FrameProcessor(self.model, self.camera, self.max_points)

    def camera_for(self, width: int, height: int):
        """The intrinsics depth uses for ``width`` x ``height`` frames: the one camera decision, which
        registration and overlay read from here."""
        return self.processor().camera_for(width, height)

    def _refresh_processor(self) -> None:
        if self.live is not None and self.model is not None:
            self.live.set_processor(FrameProcessor(self.model, self.camera, self.max_points))

    # ---- live ----
    def start(self, source, transform_node=None, realtime: bool = True, loop: bool = False) -> None:
        """Start (or switch the source of) live processing."""
        from SurgicalDepthLib.depth.scene import LiveSceneOutput
        from SurgicalDepthLib.video.sources import open_source

        src = open_source(source)
        if self.live is not None and self.live.running:
            self.live.set_source(src)
            return
        if self.live is not None:  # stopped on an error: free its source before starting anew
            self.live.close()
            self.live = None
        stale = self.output is not None and any(n.GetScene() is not self.scene for n in self.output.nodes)
        if self.output is None or stale:  # first start, or the scene was closed since
            self.output = LiveSceneOutput(self.scene, self.name, transform_node, show_video=not src.is_live)
        self.live = LiveProcessor(src, self.processor(), realtime=realtime, loop=loop)
        self.live.start()

    def update(self) -> LiveStats | None:
        """Call often from the GUI thread: shows the newest result; returns the stats (None if not started).
        Raises the error that stopped the worker, once."""
        if self.live is None:
            return None
        result = self.live.apply(self.output)
        if result is not None:
            self.last_result = result
        return self.live.stats()

    def stop(self) -> LiveStats | None:
        if self.live is None:
            return None
        self.live.stop()
        if self.output is not None:
            try:
                self.live.apply(self.output)  # the last result computed before stopping
            except SurgicalAIError:
                pass  # the worker's error stays in the stats below
        stats = self.live.stats()
        self.live.close()
        self.live = None
        return stats

    @property
    def running(self) -> bool:
        return self.live is not None and self.live.running

    # ---- recorded ----
    def process_all(self, source, out_dir=None, transform_node=None, progress=None, cancel=None):
        from SurgicalDepthLib.depth.pipeline import process_video

        if self.running:
            raise InputError("Stop live processing first.")
        return process_video(
            source,
            self.camera,
            self.processor().model,
            out_dir=out_dir,
            scene=self.scene,
            max_points=self.max_points,
            transform_node=transform_node,
            progress=progress,
            cancel=cancel,
        )
