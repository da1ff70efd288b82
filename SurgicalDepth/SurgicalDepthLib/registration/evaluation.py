"""Synthetic evaluation of registration with known poses.

Frames are rendered from a CT scenario (``synthetic_scene``) along a camera path; each frame's cloud
(true depth, or a depth model's prediction) is registered to the scenario's surfaces from the true
pose perturbed by exactly ±angle / ±shift (about the cloud's centre). Reported per run: target
registration error (TRE) at the structures' centroids and at the centre of the imaged field, rotation /
translation error, time, and
success (TRE within max(2 mm, 2x the TRE reached when starting from the truth), i.e. the start
was inside the basin of convergence).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence

import numpy as np

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, backproject
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration.shapes import apply, perturbation
from SurgicalDepthLib.registration.target import RegistrationTarget, append_polydata, target_from_polydata

MISALIGNMENTS: tuple[tuple[float, float], ...] = ((5.0, 5.0), (15.0, 10.0), (30.0, 20.0))


@dataclass
class EvalFrame:
    index: int
    pose: np.ndarray  # true camera-to-RAS
    rgb: np.ndarray
    depth_true: np.ndarray
    valid: np.ndarray
    depth_pred: np.ndarray | None = None


@dataclass
class EvalSetup:
    scenario_name: str
    camera: CameraIntrinsics
    target: RegistrationTarget
    target_points: np.ndarray  # RAS points where TRE is measured
    frames: list[EvalFrame] = field(default_factory=list)


def tre_mm(estimate: np.ndarray, truth: np.ndarray, points_ras: np.ndarray) -> float:
    """Mean distance between where the estimated and the true camera poses put the target points.

    A scale in ``estimate`` (registration of depth known up to scale) belongs to the depth, not to
    the camera pose, so only the rigid part counts."""
    from SurgicalDepthLib.overlay.follow_camera import rigid_part

    mapped = apply(rigid_part(estimate) @ np.linalg.inv(rigid_part(truth)), points_ras)
    return float(np.linalg.norm(mapped - points_ras, axis=1).mean())


def cloud_from_depth(
    depth: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics, max_points: int, rng: np.random.Generator
) -> np.ndarray:
    pts = backproject(np.where(valid, depth, 0.0), camera)
    if len(pts) > max_points:
        pts = pts[rng.choice(len(pts), max_points, replace=False)]
    return pts


def prepare(
    scenario_name: str,
    n_frames: int = 6,
    seed: int = 0,
    camera: CameraIntrinsics | None = None,
    depth_model=None,
    scenario=None,
    frames_per_key: int = 12,
) -> EvalSetup:
    """Render ``n_frames`` along a path of the scenario; predict depth too when a model is given.

    ``frames_per_key``: frames between the path's key poses (more: slower motion per frame)."""
    from SurgicalDepthLib.synthetic.camera_paths import trajectory
    from SurgicalDepthLib.synthetic.renderer import SurfaceRenderer
    from SurgicalDepthLib.synthetic.catalog import load_scenario

    camera = camera or CameraIntrinsics.from_fov(320, 256, 60.0)
    scenario = scenario or load_scenario(scenario_name)
    surfaces = {s.name: s.polydata for s in scenario.structures}
    target = target_from_polydata(append_polydata(surfaces.values()), name=scenario_name, segments=surfaces)
    centroids = np.array([np.asarray(s.polydata.GetCenter()) for s in scenario.structures])
    poses = trajectory(scenario, n_frames, seed=seed, camera=camera, frames_per_key=frames_per_key)
    renderer = SurfaceRenderer(scenario, camera)
    setup = EvalSetup(scenario_name, camera, target, centroids)
    try:
        for i, pose in enumerate(poses):
            f = renderer.render(pose, seed=seed * 1000 + i)
            pred = depth_model.predict(f.rgb) if depth_model is not None else None
            setup.frames.append(EvalFrame(i, f.pose, f.rgb, f.depth_mm, f.valid, pred))
    finally:
        renderer.close()
    return setup


Registrar = Callable[[np.ndarray, RegistrationTarget, np.ndarray], np.ndarray]


def run_trials(
    setup: EvalSetup,
    registrars: dict[str, Registrar],
    misalignments=MISALIGNMENTS,
    trials_per_frame: int = 2,
    depth: str = "true",
    max_points: int = 5000,
    seed: int = 0,
) -> list[dict]:
    """One row per (method, frame, misalignment, trial): identical clouds and starts for every method."""
    rng = np.random.default_rng(seed)
    rows = []
    for frame in setup.frames:
        d = frame.depth_true if depth == "true" else frame.depth_pred
        if d is None:
            raise ValueError("No predicted depth in this setup (prepare() needs a depth model).")
        valid = frame.valid & np.isfinite(d) & (d > 0)
        cloud = cloud_from_depth(d, valid, setup.camera, max_points, rng)
        centre = apply(frame.pose, cloud).mean(axis=0)
        starts = [
            (a, s, perturbation(a, s, centre, rng) @ frame.pose)
            for a, s in misalignments
            for _ in range(trials_per_frame)
        ]
        for name, register in registrars.items():
            reference = tre_mm(register(cloud, setup.target, frame.pose), frame.pose, setup.target_points)
            for a, s, init in starts:
                t0, c0 = time.perf_counter(), time.process_time()
                est = register(cloud, setup.target, init)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                tre = tre_mm(est, frame.pose, setup.target_points)
                tre_field = tre_mm(est, frame.pose, centre[None])
                rot, trans, scale = pose_error(est, frame.pose)
                rows.append(
                    dict(
                        method=name,
                        frame=frame.index,
                        angle_deg=a,
                        shift_mm=s,
                        tre_mm=tre,
                        tre_field_mm=tre_field,
                        rot_deg=rot,
                        trans_mm=trans,
                        scale=scale,
                        seconds=seconds,
                        cpu_seconds=cpu,
                        reference_tre_mm=reference,
                        success=tre <= max(2.0, 2.0 * reference),
                        points=len(cloud),
                        depth=depth,
                        scenario=setup.scenario_name,
                    )
                )
    return rows


def summarise(rows: Sequence[dict]) -> dict[tuple[str, float, float], dict]:
    """(method, angle, shift) -> success rate, median TRE of successes, median time."""
    out = {}
    keys = sorted({(r["method"], r["angle_deg"], r["shift_mm"]) for r in rows})
    for k in keys:
        sel = [r for r in rows if (r["method"], r["angle_deg"], r["shift_mm"]) == k]
        ok = [r for r in sel if r["success"]]
        out[k] = dict(
            n=len(sel),
            success_rate=len(ok) / len(sel),
            median_tre_mm=float(np.median([r["tre_mm"] for r in ok])) if ok else float("nan"),
            median_tre_field_mm=float(np.median([r["tre_field_mm"] for r in ok])) if ok else float("nan"),
            median_rot_deg=float(np.median([r["rot_deg"] for r in ok])) if ok else float("nan"),
            median_trans_mm=float(np.median([r["trans_mm"] for r in ok])) if ok else float("nan"),
            median_reference_tre_mm=float(np.median([r["reference_tre_mm"] for r in sel])),
            median_seconds=float(np.median([r["seconds"] for r in sel])),
            median_cpu_seconds=float(np.median([r["cpu_seconds"] for r in sel])),
        )
    return out
