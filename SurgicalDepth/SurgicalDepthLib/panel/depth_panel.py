"""The SurgicalDepth panel's Depth section, Qt-free: settings in a parameter node, live and recorded work.

Wraps :class:`~SurgicalDepthLib.depth_session.DepthSession`. Live processing already runs on the live
processor's threads and is shown by ``poll()``; "Process all frames" and calibration run through the job
runner (frames read into arrays on the caller's thread, the sequences built off-scene on the worker and
added by ``poll()``). The nodes the last run made are kept as references, so the registration section
registers recorded and live clouds alike, and they are saved with the scene.
"""
from __future__ import annotations

import enum

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.views import show_in_slice_views
from SurgicalAICore.panel.choices import Device
from SurgicalAICore.panel.jobs import JobRunner, error_message
from SurgicalAICore.panel.parameters import Param, ParameterStore

MODULE = "SurgicalDepth"


class SourceType(str, enum.Enum):
    FILE = "file"
    FOLDER = "folder"
    SEQUENCE = "sequence"
    LIVE = "live"


class StereoLayout(str, enum.Enum):
    """How a stereo endoscope's two views arrive (NONE: monocular depth from the network)."""
    NONE = "none"
    SBS = "sbs"
    TB = "tb"
    INTERLACED = "interlaced"
    TWO_VIEWS = "two views"


class AdaptMotion(str, enum.Enum):
    """Camera motion for *Adapt to this video*: structure from motion over the clip, two-view pairs, or the
    first where the clip can be reconstructed and else the second."""
    AUTO = "auto"
    SFM = "sfm"
    PAIRS = "pairs"


class AdaptLayers(str, enum.Enum):
    ALL = "all"
    DECODER = "decoder"


DEPTH_PARAMS = (
    Param("sourceType", SourceType, SourceType.FILE),
    Param("videoFile", str, ""),
    Param("frameFolder", str, ""),
    Param("sequence", "node", node_class="vtkMRMLSequenceBrowserNode"),
    Param("liveNode", "node", node_class="vtkMRMLScalarVolumeNode"),
    Param("cameraFile", str, ""),
    Param("modelFolder", str, ""),
    Param("device", Device, Device.AUTO),
    Param("pointBudget", int, 20000),
    Param("maxFrames", int, 0),                  # Process all frames: at most this many (0: every frame)
    Param("cameraTransform", "node", node_class="vtkMRMLLinearTransformNode"),
    Param("outputFolder", str, ""),
    Param("boardColumns", int, 9),
    Param("boardRows", int, 6),
    Param("squareSizeMm", float, 10.0),
    Param("stereoLayout", StereoLayout, StereoLayout.NONE),
    Param("stereoCalibrationFile", str, ""),
    Param("stereoRightFile", str, ""),           # two views: the right video file or frame folder
    Param("stereoRightNode", "node"),            # two views: the right sequence or live node
    # Adapt to this video (defaults: AdaptConfig's; a test checks they agree)
    Param("adaptMotion", AdaptMotion, AdaptMotion.AUTO),
    Param("adaptMinutes", float, 12.0),
    Param("adaptConsistencyWeight", float, 3.0),  # with whole-clip motion (SfM, or auto where SfM works) only
    Param("adaptDistillWeight", float, 0.0),
    Param("adaptTrainLayers", AdaptLayers, AdaptLayers.ALL),
    # what the last run made (results, shown and registered)
    Param("videoNode", "node"),
    Param("depthNode", "node"),
    Param("cloudNode", "node", node_class="vtkMRMLModelNode"),
    Param("resultTransform", "node", node_class="vtkMRMLLinearTransformNode"),
    Param("resultBrowser", "node", node_class="vtkMRMLSequenceBrowserNode"),  # recorded runs: steps the frames
)


def adapt_config(values: dict):
    """The adaptation settings of the panel's parameters."""
    from SurgicalDepthLib.depth.adapt import AdaptConfig

    if not values["adaptMinutes"] > 0:
        raise InputError(f"Adaptation time {values['adaptMinutes']} min must be positive.")
    motion = values["adaptMotion"]
    # the two-view pairs' independent poses are too noisy to carry depth from frame to frame (not measured);
    # "auto" drops the consistency itself where it falls back to pairs
    consistency = 0.0 if motion is AdaptMotion.PAIRS else values["adaptConsistencyWeight"]
    return AdaptConfig(minutes=values["adaptMinutes"], motion_source=motion.value, consistency_weight=consistency,
                       distill_weight=values["adaptDistillWeight"], train_layers=values["adaptTrainLayers"].value)


class DepthPanel:
    """State and actions of the Depth section on ``scene``."""

    def __init__(self, scene, session=None, show_in_views: bool = True):
        """``show_in_views``: results go into the scene's slice views (a face whose views show something
        else, the web page's CT planning views, shows them its own way)."""
        from SurgicalDepthLib.depth_session import DepthSession

        self.scene = scene
        self.show_in_views = show_in_views
        self.session = session or DepthSession(scene)
        self.params = ParameterStore(scene, MODULE, "Depth", DEPTH_PARAMS)
        self.job = JobRunner()
        self.live_message = ""
        self.stats = None

    # ---- inputs ----
    def source(self):
        """The chosen source: a path or a node (what ``open_source`` takes)."""
        kind = self.params.get("sourceType")
        value = {SourceType.FILE: "videoFile", SourceType.FOLDER: "frameFolder",
                 SourceType.SEQUENCE: "sequence", SourceType.LIVE: "liveNode"}[kind]
        spec = self.params.get(value)
        if spec in (None, ""):
            raise InputError(f"Choose the {kind.value} to read frames from.")
        layout = self.params.get("stereoLayout")
        if layout is StereoLayout.NONE:
            return spec
        from SurgicalDepthLib.stereo.scene import stereo_spec

        right_key = "stereoRightFile" if kind in (SourceType.FILE, SourceType.FOLDER) else "stereoRightNode"
        return stereo_spec(spec, layout.value, self.params.get(right_key))

    @property
    def stereo(self) -> bool:
        return self.params.get("stereoLayout") is not StereoLayout.NONE

    def apply_settings(self) -> None:
        """Load the chosen model (once) or, for a stereo source, the stereo calibration, and the point budget."""
        values = self.params.values()
        if self.stereo:
            from SurgicalDepthLib.stereo.scene import use_stereo

            if not values["stereoCalibrationFile"]:
                raise InputError("Choose the stereo calibration file (K1 D1 K2 D2 R T) for a stereo source.")
            self.session.max_points = int(values["pointBudget"])
            use_stereo(self.session, values["stereoCalibrationFile"])
            return
        self.session.set_model(values["modelFolder"] or None, values["device"].value, values["pointBudget"])

    # ---- camera ----
    def load_camera(self):
        return self.session.load_camera(self.params.get("cameraFile"))

    def save_camera(self, path=None):
        return self.session.save_camera(path or self.params.get("cameraFile"))

    def restore_camera(self) -> bool:
        return self.session.restore_camera()

    def calibrate(self):
        """Checkerboard calibration as a job; ``poll()`` stores the camera in the scene."""
        from SurgicalDepthLib.camera.calibration import calibrate_checkerboard
        from SurgicalDepthLib.video.sources import open_source

        values = self.params.values()
        src = open_source(self.source())  # a sequence's arrays are taken here, on the caller's thread
        if src.is_live:
            src.close()
            raise InputError("Calibrate from a recorded source (file, folder or sequence).")
        pattern, square = (values["boardColumns"], values["boardRows"]), values["squareSizeMm"]

        def work(progress, cancel):
            try:
                step = max(1, (src.frame_count or 60) // 60)
                frames = [f.rgb for f in src if f.index % step == 0][:60]
            finally:
                src.close()
            return calibrate_checkerboard(frames, pattern, square, progress=progress, cancel=cancel)

        def apply(result):
            self.session.set_camera(result.camera)
            self.job.message = result.summary()
            return result

        self.live_message = ""  # the status shows this job's messages now
        return self.job.start(work, apply, name="Calibration")

    # ---- live ----
    @property
    def live_running(self) -> bool:
        return self.session.running

    def start_live(self) -> None:
        """Start live depth on the chosen source (a recorded one plays in real time)."""
        self.apply_settings()
        self.session.start(self.source(), self.params.get("cameraTransform"))
        self.live_message = "Running."

    def stop_live(self) -> None:
        stats = self.session.stop()
        self.stats = stats
        self.live_message = "Stopped." if stats is None else f"Stopped. {stats.text()}"
        self._remember_live_nodes()

    def _remember_live_nodes(self) -> None:
        output = self.session.output
        if output is not None and output.cloud_node is not None and output.cloud_node.GetScene() is self.scene:
            self.params.update(videoNode=output.video_node, depthNode=output.depth_node,
                               cloudNode=output.cloud_node, resultTransform=output.transform_node,
                               resultBrowser=None)

    # ---- recorded ----
    def process_all(self):
        """Depth for every frame of the recorded source as a job; ``poll()`` adds one sequence browser."""
        from SurgicalDepthLib.depth.loaders import load_depth_model as load_model
        from SurgicalDepthLib.depth.pipeline import process_video
        from SurgicalDepthLib.video.sources import open_source

        if self.live_running:
            raise InputError("Stop live processing first.")
        values = self.params.values()
        src = open_source(self.source())
        if src.is_live:
            src.close()
            raise InputError("Process all frames needs a recorded source (file, folder or sequence).")
        key = (values["modelFolder"] or None, values["device"].value)
        model = self.session.model if self.session.model_key == key else None
        if self.stereo:  # the stereo estimator is built from the calibration, on this thread
            self.apply_settings()
            model, key = self.session.model, self.session.model_key
        camera, out_dir, transform = self.session.camera, values["outputFolder"] or None, values["cameraTransform"]
        if values["maxFrames"] < 0:
            src.close()
            raise InputError("The frame limit must be 0 (every frame) or more.")

        def work(progress, cancel):
            estimator = model if model is not None else load_model(key[0], key[1])
            summary = process_video(src, camera, estimator, out_dir=out_dir, scene=self.scene,
                                    max_points=values["pointBudget"], progress=progress, cancel=cancel,
                                    commit_scene=False, max_frames=values["maxFrames"] or None)
            return estimator, summary

        self.live_message = ""
        return self.job.start(work, lambda done: self._commit_recorded(key, transform, *done), name="Depth")

    def _commit_recorded(self, key, transform, estimator, summary):
        builder = summary.scene_nodes["builder"]
        nodes = builder.commit(self.scene, summary.camera, transform)
        summary.scene_nodes = nodes
        self.session.model, self.session.model_key = estimator, key
        proxies = nodes["proxies"]
        self.params.update(videoNode=proxies.get("video"), depthNode=proxies["depth"],
                           cloudNode=proxies["pointcloud"], resultTransform=nodes["transform"],
                           resultBrowser=nodes["browser"])
        self.show_results()
        self.job.message = f"{summary.frames} frames processed ({summary.fps:.1f} frames/s)."
        return summary

    # ---- adaptation ----
    def adapt(self):
        """Self-supervised adaptation of the depth model to the chosen recording, as a job; ``poll()`` then
        makes the session use the adapted model (written to ``<output folder>/adapted-depth-model``)."""
        from pathlib import Path

        from SurgicalDepthLib.depth.adapt import adapt_depth_model, check_loss_options
        from SurgicalDepthLib.video.sources import open_source

        if self.live_running:
            raise InputError("Stop live processing first.")
        if self.stereo:
            raise InputError("Adaptation is for the monocular network; a stereo source teaches it with stereo-teach.")
        values = self.params.values()
        if not values["outputFolder"]:
            raise InputError("Choose the output folder: the adapted model is written there.")
        camera = self.session.camera
        if camera is None:
            raise InputError("No camera intrinsics: load or calibrate the endoscope camera before adapting.")
        output = Path(values["outputFolder"]) / "adapted-depth-model"
        config = adapt_config(values)
        check_loss_options(config)  # refused here, before a job starts
        src = open_source(self.source())  # a sequence's arrays are taken here, on the caller's thread
        if src.is_live:
            src.close()
            raise InputError("Adaptation needs a recorded source (file, folder or sequence).")
        model, device = values["modelFolder"] or None, values["device"].value

        def work(progress, cancel):
            return adapt_depth_model(src, output, camera=camera, model=model, config=config, progress=progress,
                                     cancel=cancel)

        def apply(result):
            self.params.set("modelFolder", str(result.path))
            self.session.set_model(str(result.path), device)
            self.job.message = f"Adapted model written to {result.path} and in use."
            return result

        self.live_message = ""
        return self.job.start(work, apply, name="Adaptation")

    # ---- stepping through a recorded run ----
    def frame_count(self) -> int:
        """Frames of the last recorded run (1 for a live result, 0 before any)."""
        browser = self.params.get("resultBrowser")
        if browser is not None and browser.GetMasterSequenceNode() is not None:
            return browser.GetNumberOfItems()
        return int(self.params.get("cloudNode") is not None)

    def select_frame(self, index: int) -> int:
        """Show frame ``index`` (clamped) of the last recorded run: the video, depth and cloud nodes (and so
        what registration and the overlay use) become that frame's. Returns the index shown."""
        from SurgicalDepthLib.depth.scene import sequences_logic

        browser = self.params.get("resultBrowser")
        count = self.frame_count()
        if browser is None or count == 0:
            return 0
        index = min(max(int(index), 0), count - 1)
        if browser.GetSelectedItemNumber() != index:
            browser.SetSelectedItemNumber(index)
            sequences_logic(self.scene).UpdateProxyNodesFromSequences(browser)
        return index

    # ---- shared ----
    def show_results(self) -> int:
        """Video (or depth) in the slice views, depth in the yellow one; returns how many views were set."""
        video, depth = self.params.get("videoNode"), self.params.get("depthNode")
        if not self.show_in_views:
            return 0
        return show_in_slice_views(self.scene, video or depth, {"Yellow": depth})

    def poll(self):
        """Call from the GUI thread (a timer): shows live results, applies a finished job. Returns live stats."""
        self.job.poll()
        if self.session.live is None:
            return None
        try:
            stats = self.session.update()
        except Exception as error:  # the live worker's failure, raised once: stop and say why
            self.session.stop()
            self.live_message = f"Live processing stopped: {error_message(error)}"
            return None
        if stats is not None and stats.shown and self.params.get("cloudNode") is not self.session.output.cloud_node:
            self._remember_live_nodes()
            self.show_results()
        self.stats = stats
        return stats

    def status(self) -> dict:
        return {**self.job.status(), "live_running": self.live_running, "live_message": self.live_message,
                "stats": self.stats.text() if self.stats is not None else ""}

    def cancel(self) -> None:
        self.job.cancel()

    def shutdown(self) -> None:
        """Panel closed, scene closed or application exit: no thread or timer work outlives the panel."""
        self.job.shutdown()
        if self.session.live is not None:
            self.session.stop()
