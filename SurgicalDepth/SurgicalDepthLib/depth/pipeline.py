"""Video to depth maps and point clouds: one frame (:class:`FrameProcessor`) or a whole recording
(:func:`process_video`, into a folder and/or the scene).

A depth estimator is any object with ``predict(rgb HxWx3 uint8) -> HxW float32 depth (mm)`` at the
frame's resolution (the bundled network from :mod:`SurgicalDepthLib.depth_model` is one).
"""

from __future__ import annotations

import collections
import csv
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SurgicalAICore.atomic import publish
from SurgicalAICore.errors import InputError, ModelError
from SurgicalAICore.progress import CancelToken, Progress

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.depth.estimator import DepthEstimator
from SurgicalDepthLib.video.prep import field_stop_mask, fit_camera, prepare_frame
from SurgicalDepthLib.video.sources import Frame, FrameSource, open_source
from SurgicalDepthLib.depth.pointcloud import PointCloud, depth_to_pointcloud, polydata_from_cloud, write_ply

STAGES = ("read", "prep", "infer", "cloud")
IN_FLIGHT = 4  # frames whose cloud and files may wait for the worker (bounded memory, in-order results)
TIMING_COLUMNS = [
    "index",
    "name",
    "timestamp_s",
    "read_ms",
    "prep_ms",
    "infer_ms",
    "cloud_ms",
    "write_ms",
    "total_ms",
    "points",
]


@dataclass
class DepthResult:
    """A processed frame: the depth map (mm, 0 = none) at the frame's resolution, its point cloud
    (camera frame), the intrinsics used and per-stage seconds."""

    index: int
    timestamp_s: float
    name: str
    rgb: np.ndarray
    depth_mm: np.ndarray
    cloud: PointCloud
    camera: CameraIntrinsics
    timings: dict[str, float] = field(default_factory=dict)
    poly: object = None  # vtkPolyData of the cloud, built off the main thread
    received_at: float = 0.0  # time.perf_counter() when processing started
    confidence: np.ndarray | None = None  # [0, 1] per pixel, from depth sources that give one (stereo)


class FrameProcessor:
    """Frame -> masks -> depth -> point cloud. Holds its settings and a cached field-of-view mask
    only, so one instance can be swapped for another between frames (live switching of model or camera).

    The field stop of an endoscope does not move between frames: its mask is found again every
    ``mask_every`` frames (and whenever the frame size changes), not for every frame.
    """

    def __init__(
        self,
        model: DepthEstimator,
        camera: CameraIntrinsics | None = None,
        max_points: int | None = 20000,
        auto_mask: bool = True,
        mask_specular: bool = True,
        undistort: bool = True,
        build_polydata: bool = True,
        mask_every: int = 15,
    ):
        if model is None or not hasattr(model, "predict"):
            raise ModelError("No depth model was given; load one (the bundled model or a model folder).")
        if max_points is not None and max_points < 1:
            raise InputError(f"The point budget must be at least 1, got {max_points}.")
        self.model = model
        self.camera = camera
        self.max_points = max_points
        self.auto_mask = auto_mask
        self.mask_specular = mask_specular
        self.undistort = undistort
        self.build_polydata = build_polydata
        self.mask_every = max(1, int(mask_every))
        self._fov_cache = None  # (shape, frames since computed, mask)

    def _field_of_view(self, rgb: np.ndarray) -> np.ndarray:
        cache = self._fov_cache
        if cache is None or cache[0] != rgb.shape or cache[1] >= self.mask_every:
            mask = field_stop_mask(rgb)
            self._fov_cache = (rgb.shape, 1, mask)
            return mask
        self._fov_cache = (cache[0], cache[1] + 1, cache[2])
        return cache[2]

    def camera_for(self, width: int, height: int) -> CameraIntrinsics:
        return fit_camera(self.camera, width, height, default_fov_deg=_model_fov(self.model))

    def process(self, frame: Frame) -> DepthResult:
        return self.to_cloud(self.estimate(frame))

    def estimate(self, frame: Frame) -> _Estimate:
        """The first half of :meth:`process`: masks and depth (the network). :meth:`to_cloud` is the second half,
        so a recording can run the next frame's network while a worker makes this frame's cloud."""
        start = time.perf_counter()
        rgb = frame.rgb
        camera = self.camera_for(rgb.shape[1], rgb.shape[0])
        prepared = prepare_frame(rgb, camera, auto_mask=False, mask_specular=self.mask_specular)
        if self.auto_mask:
            prepared.field_of_view = self._field_of_view(rgb)
        t_prep = time.perf_counter()
        confidence = None
        right = getattr(frame, "right", None)
        if right is not None and hasattr(self.model, "predict_pair"):  # stereo: see SurgicalDepthLib.stereo
            depth, confidence = self.model.predict_pair(rgb, right)
        else:
            depth = self.model.predict(rgb)
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != rgb.shape[:2]:
            raise ModelError(
                f"The depth model returned a {depth.shape[1]}x{depth.shape[0]} map for a "
                f"{rgb.shape[1]}x{rgb.shape[0]} frame."
            )
        depth = np.where(np.isfinite(depth) & (depth > 0) & prepared.field_of_view, depth, 0).astype(np.float32)
        t_infer = time.perf_counter()
        if confidence is not None:
            confidence = np.where(depth > 0, confidence, 0).astype(np.float32)
        timings = {"read": frame.read_s, "prep": t_prep - start, "infer": t_infer - t_prep}
        return _Estimate(frame, camera, ~prepared.specular, depth, confidence, timings, start)

    def to_cloud(self, e: _Estimate) -> DepthResult:
        t0 = time.perf_counter()
        frame, rgb = e.frame, e.frame.rgb
        cloud = depth_to_pointcloud(e.depth, rgb, e.camera, e.keep, self.max_points, self.undistort)
        poly = polydata_from_cloud(cloud) if self.build_polydata else None
        timings = {**e.timings, "cloud": time.perf_counter() - t0}
        return DepthResult(frame.index, frame.timestamp_s, frame.name, rgb, e.depth, cloud, e.camera, timings, poly,
                           e.start, e.confidence)


@dataclass
class _Estimate:
    frame: Frame
    camera: CameraIntrinsics
    keep: np.ndarray  # pixels that may become points (not specular highlights)
    depth: np.ndarray
    confidence: np.ndarray | None
    timings: dict[str, float]
    start: float


def _model_fov(model) -> float:
    """The vertical field of view the model was trained with (its card), else a typical 70 degrees."""
    card = getattr(model, "card", None) or {}
    camera = card.get("camera")
    if isinstance(camera, dict):
        try:
            return CameraIntrinsics.from_dict(camera).vertical_fov_deg
        except (InputError, TypeError, ValueError):
            pass
    for section in ("training", "architecture"):
        value = (card.get(section) or {}).get("vertical_fov_deg") if isinstance(card.get(section), dict) else None
        if isinstance(value, (int, float)) and 0 < value < 180:
            return float(value)
    return 70.0


@dataclass
class VideoDepthSummary:
    frames: int
    seconds: float
    camera: CameraIntrinsics | None
    median_ms: dict[str, float]
    out_dir: Path | None = None
    scene_nodes: dict | None = None
    names: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _prepare_out_dir(out_dir: Path) -> Path:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"Output folder {out_dir} exists and is not empty; choose a new folder.")
    parent = out_dir.parent
    if not parent.is_dir():  # nothing is created for an output that may never be written
        raise InputError(f"The folder for {out_dir.name} does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise InputError(f"Cannot write to {parent}.")
    return Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=parent))


def _check_scene_budget(result: DepthResult, points: int, total: int, budget: float) -> None:
    """Sequences live in memory: refuse, before the work, a recording whose sequences would not fit."""
    per_frame = result.rgb.shape[0] * result.rgb.shape[1] * (3 + 4) + points * (12 + 3 + 4 + 8)
    need = per_frame * total
    if need > budget:
        raise InputError(
            f"{total} frames would need about {need / 1e9:.1f} GB as scene sequences "
            f"(limit {budget / 1e9:.1f} GB); process a part (max frames), lower the point budget, "
            f"or write to a folder only."
        )


def _cloud_and_files(processor: FrameProcessor, estimate: _Estimate, tmp: Path | None, write_clouds: bool):
    """(result, seconds spent writing): the worker's half of a recorded frame."""
    result = processor.to_cloud(estimate)
    t_write = time.perf_counter()
    if tmp is not None:
        np.save(tmp / f"{result.name}.npy", result.depth_mm)
        if result.confidence is not None:
            np.save(tmp / f"{result.name}_confidence.npy", result.confidence)
        if write_clouds:
            write_ply(result.cloud, tmp / f"{result.name}.ply")
    return result, time.perf_counter() - t_write


def process_video(
    source,
    camera: CameraIntrinsics | None = None,
    model: DepthEstimator | None = None,
    out_dir: str | Path | None = None,
    scene=None,
    max_points: int | None = 20000,
    device: str = "auto",
    model_path=None,
    write_clouds: bool = True,
    name: str | None = None,
    transform_node=None,
    max_frames: int | None = None,
    progress=None,
    cancel: CancelToken | None = None,
    on_result=None,
    scene_budget_bytes: float = 4e9,
    commit_scene: bool = True,
) -> VideoDepthSummary:
    """Depth maps and point clouds for every frame of a recorded ``source`` (video path, frame folder,
    sequence node or :class:`FrameSource`).

    ``out_dir``: per frame ``<frame name>.npy`` (float32 depth in mm at the frame's resolution, 0 where
    invalid) and ``<frame name>.ply``, plus ``timings.csv`` and ``camera.json``; the folder appears only
    when complete. ``scene``: one sequence browser with video, depth and point-cloud sequences, added
    only when complete. ``on_result(result)`` sees each frame (pictures, metrics). ``commit_scene=False``
    (work on a worker thread): the scene is not touched, ``scene_nodes`` is ``{"builder": builder}`` and the
    caller commits it on the GUI thread.
    """
    if out_dir is None and scene is None and on_result is None:
        raise InputError("Give an output folder, a scene, or both.")
    steps = Progress.of(progress, cancel)
    src: FrameSource = open_source(source)
    if src.is_live:
        raise InputError("process_video needs a recorded source; use LiveProcessor for live streams.")
    if model is None:
        steps.step(0.0, "loading the depth model")
        from SurgicalDepthLib.depth.loaders import load_depth_model

        model = load_depth_model(model_path, device)
    # vtkPolyData (and VTK itself) only for the consumers that take it: files are written from the arrays
    processor = FrameProcessor(model, camera, max_points, build_polydata=scene is not None or on_result is not None)
    out_dir = Path(out_dir) if out_dir is not None else None
    tmp = _prepare_out_dir(out_dir) if out_dir is not None else None
    builder = None
    if scene is not None:
        from SurgicalDepthLib.depth.scene import RecordedSequenceBuilder

        builder = RecordedSequenceBuilder(name or src.name)
    total = src.frame_count
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    rows, names, used_camera = [], [], None
    start = time.perf_counter()
    # one worker makes each frame's cloud and writes its files while this thread runs the next frame's
    # network; at most IN_FLIGHT frames wait, and they are taken back in order (scene, callbacks, rows).
    # An ``on_result`` callback sees each frame before the next one's network runs, as it may cancel.
    in_flight = 0 if on_result is not None else IN_FLIGHT
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="depth-cloud")
    pending: collections.deque = collections.deque()

    def finish_oldest() -> None:
        result, write_s = pending.popleft().result()
        frame_index = result.index
        if builder is not None:
            if frame_index == 0 and total:
                _check_scene_budget(result, len(result.cloud), total, scene_budget_bytes)
            builder.add(result.timestamp_s, result.rgb, result.depth_mm, result.poly)
        if on_result is not None:
            on_result(result)
        t = result.timings
        rows.append(
            [frame_index, result.name, f"{result.timestamp_s:.6f}"]
            + [f"{1000 * t[s]:.3f}" for s in STAGES]
            + [f"{1000 * write_s:.3f}", f"{1000 * (sum(t.values()) + write_s):.3f}", len(result.cloud)]
        )
        names.append(result.name)

    try:
        try:
            for frame in src:
                if max_frames is not None and frame.index >= max_frames:
                    break
                steps.step(
                    0.95 * frame.index / total if total else 0.5,
                    f"frame {frame.index + 1}" + (f"/{total}" if total else ""),
                )
                estimate = processor.estimate(frame)
                used_camera = estimate.camera
                pending.append(pool.submit(_cloud_and_files, processor, estimate, tmp, write_clouds))
                while len(pending) > in_flight:
                    finish_oldest()
            while pending:
                finish_oldest()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # no worker may write into a folder being removed
        if not rows:
            raise InputError(f"{src.name}: no frame was read.")
        seconds = time.perf_counter() - start
        steps.step(0.97, "saving")
        if tmp is not None:
            with open(tmp / "timings.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(TIMING_COLUMNS)
                writer.writerows(rows)
            used_camera.save_json(tmp / "camera.json")
        # the scene first: a folder rename is the step least likely to fail, so it comes last
        scene_nodes = None
        if builder is not None:
            scene_nodes = builder.commit(scene, used_camera, transform_node) if commit_scene else {"builder": builder}
        if tmp is not None:
            if out_dir.exists():
                out_dir.rmdir()
            publish(tmp, out_dir)  # mkdtemp made it private; published with ordinary permissions
            tmp = None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        src.close()
    medians = {s: float(np.median([float(r[3 + i]) for r in rows])) for i, s in enumerate(STAGES)}
    medians["write"] = float(np.median([float(r[7]) for r in rows]))
    medians["total"] = float(np.median([float(r[8]) for r in rows]))
    steps.step(1.0, f"{len(rows)} frames")
    return VideoDepthSummary(len(rows), seconds, used_camera, medians, out_dir, scene_nodes, names)


__all__ = ["DepthResult", "FrameProcessor", "VideoDepthSummary", "process_video"]
