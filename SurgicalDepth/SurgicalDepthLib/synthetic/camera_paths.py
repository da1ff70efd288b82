"""Endoscope placement in a scenario: random useful poses and smooth video trajectories.

A pose stands off a random surface point along its normal (the normals point out of tissue, into
the cavity) at a working distance shortened to the free space in front of the surface, looks back
at that point with some jitter, and has a random roll. A pose is *useful* when the camera is not in
tissue and the rendered view has at least ``min_valid_fraction`` valid depth and a median depth of
at least ``min_median_depth_mm`` (not pressed against a wall). Trajectories join useful keyframes
with cubic splines through camera positions and look-at targets, so motion is smooth.
"""

from __future__ import annotations


import numpy as np
import vtk

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.synthetic.scenarios import Scenario, polydata_normals, polydata_points


def look_at(
    position: np.ndarray,
    target: np.ndarray,
    roll_rad: float = 0.0,
    up_hint: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> np.ndarray:
    """Camera-to-RAS pose at ``position`` whose optical axis (z) points at ``target``."""
    position = np.asarray(position, float)
    z = np.asarray(target, float) - position
    norm = np.linalg.norm(z)
    if norm < 1e-9:
        raise InputError("Camera position and target coincide.")
    z /= norm
    up = np.asarray(up_hint, float)
    if abs(np.dot(up, z)) > 0.95:
        up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    y = -(up - np.dot(up, z) * z)  # image y points down, away from "up"
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    c, s = np.cos(roll_rad), np.sin(roll_rad)
    x, y = c * x + s * y, -s * x + c * y
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, position
    return pose


class PosePlanner:
    """Samples useful poses for one scenario and camera (keeps a geometry-only renderer)."""

    def __init__(self, scenario: Scenario, camera: CameraIntrinsics, renderer=None):
        from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer

        self.scenario = scenario
        self.camera = camera
        self.strategy = scenario.strategy
        self.renderer = renderer or SurfaceRenderer(scenario, camera, RenderOptions(randomise=False))
        pts, nrm = [], []
        for s in scenario.structures:
            pts.append(polydata_points(s.polydata))
            nrm.append(polydata_normals(s.polydata))
        self.points = np.concatenate(pts)
        self.normals = np.concatenate(nrm)
        self.normals /= np.maximum(np.linalg.norm(self.normals, axis=1, keepdims=True), 1e-12)
        candidates = np.arange(len(self.points))
        if self.strategy.prefer_direction is not None:
            d = np.asarray(self.strategy.prefer_direction, float)
            d /= np.linalg.norm(d)
            candidates = candidates[self.normals @ d >= self.strategy.min_alignment]
        if len(candidates) == 0:
            raise InputError(f"Scenario '{scenario.name}' has no surface facing the preferred camera direction.")
        self.candidates = candidates
        append = vtk.vtkAppendPolyData()
        for s in scenario.structures:
            append.AddInputData(s.polydata)
        append.Update()
        self._obb = vtk.vtkOBBTree()
        self._obb.SetDataSet(append.GetOutput())
        self._obb.BuildLocator()

    def free_distance(self, point: np.ndarray, direction: np.ndarray, max_mm: float) -> float:
        """Distance from ``point`` along ``direction`` to the first surface hit (``max_mm`` if none)."""
        start = point + direction * 0.05
        hits = vtk.vtkPoints()
        self._obb.IntersectWithLine(start, point + direction * max_mm, hits, None)
        if hits.GetNumberOfPoints() == 0:
            return max_mm
        return float(np.linalg.norm(np.array(hits.GetPoint(0)) - point))

    def enclosed(self, position: np.ndarray, rng: np.random.Generator, within_mm: float, rays: int = 10) -> bool:
        """True when nearly all random rays from ``position`` hit a wall within ``within_mm`` (inside a cavity)."""
        dirs = rng.normal(size=(rays, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        hits = sum(self.free_distance(position, d, within_mm) < within_mm for d in dirs)
        return hits >= rays - 1

    def is_useful(self, pose: np.ndarray) -> bool:
        if self.scenario.inside_tissue(pose[:3, 3]):
            return False
        depth, _ = self.renderer.render_geometry(pose)
        valid = depth > 0
        if valid.mean() < self.strategy.min_valid_fraction:
            return False
        return float(np.median(depth[valid])) >= self.strategy.min_median_depth_mm

    def _pose_at(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """(position, target) standing off surface point ``index``, or None if there is no room."""
        st = self.strategy
        p, n = self.points[index], self.normals[index]
        # tilt the stand-off direction so views are not always head-on
        tilt = rng.normal(0, np.radians(st.look_jitter_deg), 3)
        direction = n + np.cross(tilt, n)
        direction /= np.linalg.norm(direction)
        wanted = rng.uniform(*st.distance_mm)
        room = self.free_distance(p, direction, st.distance_mm[1] * 1.5)
        distance = min(wanted, 0.75 * room)
        if distance < st.distance_mm[0] * 0.5:
            return None
        position = p + direction * distance
        if st.enclosed_mm is not None and not self.enclosed(position, rng, st.enclosed_mm):
            return None
        target = p + rng.normal(0, 0.15 * distance, 3)
        return position, target

    def random_pose(
        self, rng: np.random.Generator, max_tries: int = 200, near: np.ndarray | None = None, radius_mm: float = 10.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pose, position, target) of a useful random pose; ``near`` limits surface points to a ball."""
        candidates = self.candidates
        if near is not None:
            close = candidates[np.linalg.norm(self.points[candidates] - near, axis=1) <= radius_mm]
            if len(close):
                candidates = close
        for _ in range(max_tries):
            found = self._pose_at(int(rng.choice(candidates)), rng)
            if found is None:
                continue
            position, target = found
            pose = look_at(position, target, rng.uniform(-np.pi, np.pi))
            if self.is_useful(pose):
                return pose, position, target
        raise InputError(f"Found no useful camera pose in scenario '{self.scenario.name}' after {max_tries} tries.")


def random_poses(
    scenario: Scenario, camera: CameraIntrinsics, n: int, seed: int = 0, planner: PosePlanner | None = None
) -> list[np.ndarray]:
    """``n`` independent useful poses."""
    planner = planner or PosePlanner(scenario, camera)
    rng = np.random.default_rng(seed)
    return [planner.random_pose(rng)[0] for _ in range(n)]


def trajectory(
    scenario: Scenario,
    n_frames: int,
    seed: int = 0,
    camera: CameraIntrinsics | None = None,
    frames_per_key: int = 12,
    planner: PosePlanner | None = None,
    max_restarts: int = 20,
) -> list[np.ndarray]:
    """A smooth path of ``n_frames`` useful camera-to-RAS poses (every frame checked)."""
    from scipy.interpolate import CubicSpline

    if n_frames < 1:
        raise InputError("A trajectory needs at least one frame.")
    camera = camera or CameraIntrinsics.from_fov(320, 256, 60.0)
    planner = planner or PosePlanner(scenario, camera)
    rng = np.random.default_rng(seed)
    step = scenario.strategy.step_mm
    for _ in range(max_restarts):
        n_keys = max(2, int(np.ceil((n_frames - 1) / frames_per_key)) + 1)
        _, pos, tgt = planner.random_pose(rng)
        positions, targets = [pos], [tgt]
        rolls = [rng.uniform(-np.pi, np.pi)]
        try:
            for _ in range(n_keys - 1):
                _, pos, tgt = planner.random_pose(rng, near=targets[-1], radius_mm=2.0 * step, max_tries=60)
                positions.append(pos)
                targets.append(tgt)
                rolls.append(rolls[-1] + rng.normal(0, 0.25))
        except InputError:
            continue
        t_keys = np.linspace(0.0, 1.0, n_keys)
        t = np.linspace(0.0, 1.0, n_frames)
        ps = CubicSpline(t_keys, np.array(positions), bc_type="natural")(t)
        ts = CubicSpline(t_keys, np.array(targets), bc_type="natural")(t)
        rs = np.interp(t, t_keys, np.array(rolls))
        poses = [look_at(p, q, r) for p, q, r in zip(ps, ts, rs, strict=False)]
        if all(planner.is_useful(pose) for pose in poses):
            return poses
    raise InputError(
        f"Could not build a {n_frames}-frame trajectory in scenario '{scenario.name}'; "
        "try fewer frames or another seed."
    )
