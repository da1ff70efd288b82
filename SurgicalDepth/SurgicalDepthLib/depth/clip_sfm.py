"""Structure from motion over the user's whole clip, for self-supervised depth adaptation.

Pairwise two-view motion (:mod:`.adapt_motion`) is too noisy on short endoscopic baselines to supervise a
photometric loss. Here the clip is reconstructed as a whole with COLMAP's incremental mapper (``pycolmap``):
SIFT features on contrast-equalised frames inside the field of view, sequential matching, incremental
registration with bundle adjustment over every frame, the calibrated intrinsics held fixed. The result
gives (a) camera poses in one consistent scale, and (b) per frame the multi-view triangulated points it
sees, a scale-free sparse depth (as in Liu et al., IEEE TMI 2020, on this kind of sinus video).

:func:`clip_motion_from_sfm` turns the reconstruction into the :class:`~.adapt_motion.ClipMotion` the
adaptation loop consumes: for each frame one partner on each side, with the relative pose (``|t| = 1``) and
all the frame's SfM points, their depths in units of that pair's baseline.

Poses follow OpenCV: ``X_cam = R X_world + t`` (x right, y down, z forward).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SurgicalAICore.errors import InputError, OperationCancelled
from SurgicalAICore.signals import handlers_kept

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.depth.adapt_motion import ClipMotion, PairMotion, _grey


@dataclass
class SfmConfig:
    width: int = 640  # frames are resized to this width for features and mapping
    max_features: int = 4000
    peak_threshold: float = 0.004  # SIFT contrast threshold; below COLMAP's 0.0067: mucosa is low in contrast
    overlap: int = 12  # each frame is matched with this many following frames
    min_track_length: int = 3  # points seen in fewer frames are not used as depth supervision
    max_reprojection_px: float = 2.0
    min_registered: float = 0.5  # fraction of the clip the largest reconstruction must hold
    min_points: int = 20  # per frame, for the frame to take part
    min_flow_px: float = 1.0  # median displacement between frames below this (640 px wide): no motion
    min_parallax_px: float = 12.0  # wanted median displacement between a frame and its partner
    max_gap: int = 8
    threads: int = 1
    seed: int = 0


@dataclass
class ClipReconstruction:
    """Poses and per-frame sparse points of the frames the mapper registered (indices into the clip)."""

    camera: CameraIntrinsics  # the camera the uv coordinates refer to
    frames: int
    poses: dict[int, np.ndarray] = field(default_factory=dict)  # 3x4 [R | t], X_cam = R X_world + t
    points: dict[int, np.ndarray] = field(default_factory=dict)  # (N, 3) [u, v, z]
    point_ids: dict[int, np.ndarray] = field(default_factory=dict)  # (N,) ids of the 3D points
    mean_reprojection_px: float = 0.0
    mean_track_length: float = 0.0
    points3d: int = 0

    @property
    def registered(self) -> list[int]:
        return sorted(self.poses)


def _pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise InputError("Clip reconstruction needs pycolmap (pip install pycolmap==3.12.6).") from None
    return pycolmap


def _write_inputs(folder: Path, frames, mask: np.ndarray, width: int, cancel, report) -> tuple[list[str], float]:
    import cv2

    names = []
    scale = 1.0
    for k, rgb in enumerate(frames):
        if cancel is not None:
            cancel.raise_if_cancelled()
        grey, scale = _grey(rgb, width)
        name = f"{k:06d}.png"
        cv2.imwrite(str(folder / "images" / name), grey)
        names.append(name)
        report(0.05 * (k + 1) / len(frames), f"preparing frames {k + 1}/{len(frames)}")
    h, w = grey.shape
    small = cv2.resize(mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_NEAREST)
    # SIFT descriptors reach over the border of the field stop: keep features clear of it
    small = cv2.erode(small, np.ones((9, 9), np.uint8))
    cv2.imwrite(str(folder / "mask.png"), small)
    return names, scale


def _run_colmap(folder: Path, camera: CameraIntrinsics, cfg: SfmConfig, cancel, report):
    pycolmap = _pycolmap()
    pycolmap.set_random_seed(cfg.seed)
    # COLMAP logs every matched pair and registered image; progress reports what matters
    pycolmap.logging.minloglevel = max(int(pycolmap.logging.minloglevel), 1)
    db = str(folder / "database.db")
    images = str(folder / "images")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_mask_path = str(folder / "mask.png")
    # COLMAP puts pixel centres at +0.5 (OpenCV, and this project, at integers)
    params = (camera.fx, camera.fy, camera.cx + 0.5, camera.cy + 0.5)
    reader.camera_params = ",".join(f"{v:.6f}" for v in params)
    sift = pycolmap.SiftExtractionOptions()
    sift.num_threads = cfg.threads
    sift.max_num_features = cfg.max_features
    sift.peak_threshold = cfg.peak_threshold
    report(0.05, "SIFT features")
    pycolmap.extract_features(db, images, camera_mode=pycolmap.CameraMode.SINGLE, camera_model="PINHOLE",
                              reader_options=reader, sift_options=sift, device=pycolmap.Device.cpu)
    if cancel is not None:
        cancel.raise_if_cancelled()
    _check_features(pycolmap, db, cfg)
    report(0.2, "matching features")
    matching = pycolmap.SiftMatchingOptions()
    matching.num_threads = cfg.threads
    sequential = pycolmap.SequentialMatchingOptions()
    sequential.overlap = cfg.overlap
    sequential.quadratic_overlap = False
    sequential.num_threads = cfg.threads
    pycolmap.match_sequential(db, sift_options=matching, matching_options=sequential, device=pycolmap.Device.cpu)
    if cancel is not None:
        cancel.raise_if_cancelled()
    return _map(pycolmap, db, images, folder, cfg, cancel, report)


def _check_features(pycolmap, db: str, cfg: SfmConfig) -> None:
    """Refuse a clip whose frames hold too few features (COLMAP's matcher aborts the process on a clip
    without any)."""
    database = pycolmap.Database(db)
    try:
        images = database.read_all_images()
        counts = [database.num_keypoints_for_image(image.image_id) for image in images]
    finally:
        database.close()
    good = sum(c >= 2 * cfg.min_points for c in counts)
    if good < max(3, cfg.min_registered * len(counts)):
        raise InputError(
            f"Only {good} of {len(counts)} frames show enough features ({2 * cfg.min_points} or more) for "
            "structure from motion; the clip is too blurred, dark or textureless."
        )


def _map(pycolmap, db: str, images: str, folder: Path, cfg: SfmConfig, cancel, report):
    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = cfg.threads
    # the calibration is given: refining it on a short clip only trades it against the poses
    opts.ba_refine_focal_length = False
    opts.ba_refine_principal_point = False
    opts.ba_refine_extra_params = False
    opts.mapper.abs_pose_refine_focal_length = False
    opts.mapper.abs_pose_refine_extra_params = False
    # an endoscope moves mostly forward, with small baselines: the default 16 degree initial triangulation
    # angle would find no initial pair in such a clip
    opts.mapper.init_min_tri_angle = 4.0
    opts.mapper.init_max_forward_motion = 0.99
    opts.max_num_models = 3
    (folder / "sparse").mkdir()
    state = {"registered": 0, "cancelled": False}

    def next_image():
        state["registered"] += 1
        # the mapper cannot be interrupted from Python: a cancelled run finishes its current model quietly
        if cancel is not None and cancel.cancelled:
            state["cancelled"] = True
        report(0.3 + 0.65 * min(1.0, state["registered"] / max(1, state["frames"])),
               f"reconstructing the clip: {state['registered']} frames registered")

    state["frames"] = len(list(Path(images).iterdir()))
    models = pycolmap.incremental_mapping(db, images, str(folder / "sparse"), opts, next_image_callback=next_image)
    if state["cancelled"] or (cancel is not None and cancel.cancelled):
        raise OperationCancelled()
    if not models:
        return None
    return max(models.values(), key=lambda r: r.num_reg_images())


def _read_reconstruction(rec, names: list[str], camera: CameraIntrinsics, cfg: SfmConfig) -> ClipReconstruction:
    index = {name: k for k, name in enumerate(names)}
    out = ClipReconstruction(camera, len(names))
    out.points3d = rec.num_points3D()
    out.mean_reprojection_px = float(rec.compute_mean_reprojection_error())
    out.mean_track_length = float(rec.compute_mean_track_length()) if out.points3d else 0.0
    for image in rec.images.values():
        k = index[image.name]
        pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
        Rt = np.asarray(pose.matrix(), np.float64)
        rows, ids = [], []
        for p2d in image.points2D:
            if not p2d.has_point3D():
                continue
            point = rec.points3D[p2d.point3D_id]
            if point.track.length() < cfg.min_track_length or point.error > cfg.max_reprojection_px:
                continue
            z = Rt[2, :3] @ point.xyz + Rt[2, 3]
            if z > 0:
                rows.append((p2d.xy[0] - 0.5, p2d.xy[1] - 0.5, z))
                ids.append(p2d.point3D_id)
        out.poses[k] = Rt
        out.points[k] = np.asarray(rows, np.float64).reshape(-1, 3)
        out.point_ids[k] = np.asarray(ids, np.int64)
    return out


def reconstruct_clip(
    frames: Sequence[np.ndarray],
    camera: CameraIntrinsics,
    mask: np.ndarray,
    cfg: SfmConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel=None,
) -> ClipReconstruction:
    """Reconstruct a clip of same-size RGB frames with intrinsics ``camera`` (for their size) and field-of-view
    ``mask``. Raises InputError when the clip cannot be reconstructed (too few frames, features or motion)."""
    cfg = cfg or SfmConfig()
    if len(frames) < 3:
        raise InputError(f"Clip reconstruction needs at least 3 frames, got {len(frames)}.")

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    width = min(cfg.width, frames[0].shape[1])
    height = round(frames[0].shape[0] * width / frames[0].shape[1])
    cam = camera.scaled(width, height)
    with tempfile.TemporaryDirectory(prefix="surgicalai-sfm-") as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        names, _ = _write_inputs(folder, frames, mask, width, cancel, report)
        with handlers_kept():  # COLMAP puts glog's handlers in place of the command's clean cancel
            rec = _run_colmap(folder, cam, cfg, cancel, report)
        result = _read_reconstruction(rec, names, cam, cfg) if rec is not None else ClipReconstruction(cam, len(names))
    report(1.0, f"reconstructed {len(result.poses)} of {len(frames)} frames, {result.points3d} points")
    enough = [k for k, p in result.points.items() if len(p) >= cfg.min_points]
    if len(enough) < max(3, cfg.min_registered * len(frames)):
        raise InputError(
            f"Structure from motion registered {len(enough)} of {len(frames)} frames with at least "
            f"{cfg.min_points} points; the clip is too short, blurred, dark or textureless, or the camera "
            "hardly moves."
        )
    return result


def relative_pose(pose_i: np.ndarray, pose_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with X_j = R X_i + t from two 3x4 world-to-camera poses."""
    R = pose_j[:, :3] @ pose_i[:, :3].T
    return R, pose_j[:, 3] - R @ pose_i[:, 3]


def median_flow(rec: ClipReconstruction) -> float:
    """Median displacement (px) of the shared points between consecutive registered frames."""
    flows = []
    for a in rec.registered:
        b = a + 1
        if b not in rec.poses:
            continue
        common, ia, ib = np.intersect1d(rec.point_ids[a], rec.point_ids[b], return_indices=True)
        if len(common) >= 8:
            flows.append(float(np.median(np.linalg.norm(rec.points[a][ia, :2] - rec.points[b][ib, :2], axis=1))))
    return float(np.median(flows)) if flows else 0.0


def clip_motion_from_sfm(rec: ClipReconstruction, cfg: SfmConfig | None = None) -> ClipMotion:
    """Pairs for the adaptation loss: each frame with a partner ahead and behind at a gap giving about
    ``min_parallax_px`` of displacement, every pair carrying all the frame's SfM points."""
    cfg = cfg or SfmConfig()
    flow = median_flow(rec)
    if flow < cfg.min_flow_px * rec.camera.width / 640:
        raise InputError(
            f"The clip shows too little camera motion (median {flow:.2f} px between frames): adaptation needs "
            "a moving endoscope."
        )
    gap = int(np.clip(math.ceil(cfg.min_parallax_px * rec.camera.width / 640 / flow), 1, cfg.max_gap))
    usable = {k for k, p in rec.points.items() if len(p) >= cfg.min_points}
    motion = ClipMotion(rec.camera, [], rec.frames, flow)
    for i in sorted(usable):
        for side in (1, -1):
            # the nearest registered partner at the wanted gap or up to half of it closer
            for g in range(gap, max(1, gap // 2) - 1, -1):
                j = i + side * g
                if j not in rec.poses:
                    continue
                R, t = relative_pose(rec.poses[i], rec.poses[j])
                base = float(np.linalg.norm(t))
                if base <= 1e-9:
                    continue
                pts = rec.points[i]
                parallax = _parallax(rec, i, j)
                motion.pairs.append(PairMotion(i, j, R, t / base, pts[:, :2].astype(np.float32),
                                               (pts[:, 2] / base).astype(np.float32), len(pts), parallax,
                                               rec.mean_reprojection_px))
                break
    motion.registered = sorted({p.i for p in motion.pairs})
    return motion


def _parallax(rec: ClipReconstruction, i: int, j: int) -> float:
    common, ia, ib = np.intersect1d(rec.point_ids[i], rec.point_ids[j], return_indices=True)
    if not len(common):
        return 0.0
    return float(np.median(np.linalg.norm(rec.points[i][ia, :2] - rec.points[j][ib, :2], axis=1)))
