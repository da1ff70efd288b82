"""CT-derived surfaces, scenarios and camera paths."""

import itertools
import numpy as np
import pytest

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.synthetic.camera_paths import PosePlanner, look_at, trajectory
from SurgicalDepthLib.synthetic.dataset import default_camera
from SurgicalDepthLib.synthetic.scenarios import (
    cavity_surface,
    polydata_normals,
    polydata_points,
    shapes_scenario,
    surface_from_labels,
)
from SurgicalDepthLib.synthetic.catalog import load_scenario

M = np.array([[-2.0, 0, 0, 50.0], [0, -2.0, 0, 20.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])  # LPS-like flips


def ball_labels(shape=(30, 32, 34), centre=(15, 16, 17), radius=8):
    k, j, i = np.indices(shape)
    return ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius**2).astype(np.uint8)


def test_surface_from_labels_is_closed_in_ras_with_outward_normals():
    labels = ball_labels()
    labels[labels == 1] = 3
    poly = surface_from_labels(labels, M, [3])
    pts, nrm = polydata_points(poly), polydata_normals(poly)
    centre = (M @ np.array([17, 16, 15, 1.0]))[:3]
    radial = pts - centre
    assert np.mean(np.sum(radial * nrm, axis=1) > 0) > 0.99  # outward, despite the flipped axes
    r = np.linalg.norm(radial * np.array([1 / 2.0, 1 / 2.0, 1 / 2.5]), axis=1)
    assert abs(np.median(r) - 8.0) < 1.0
    with pytest.raises(InputError, match="absent"):
        surface_from_labels(labels, M, [9])


def test_cavity_surface_normals_point_into_the_air():
    ct = np.full((40, 40, 40), 40.0, np.float32)  # soft tissue block
    ct[:, :, :6] = -1000  # air beside it
    k, j, i = np.indices(ct.shape)
    cavity = (k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 9**2
    ct[cavity] = -1000  # an air cavity inside
    ct[35:, 35:, 35:] = -1000
    ct[10:15, 10:15, 1:4] = 300  # a separate "couch" blob, dropped by the body mask
    surface, is_tissue = cavity_surface(ct, np.eye(4))
    pts, nrm = polydata_points(surface), polydata_normals(surface)
    inner = np.linalg.norm(pts - 20.0, axis=1) < 12
    assert inner.sum() > 100
    # inside the cavity the normals point to its centre (into the air)
    assert np.mean(np.sum((20.0 - pts[inner]) * nrm[inner], axis=1) > 0) > 0.99
    assert not is_tissue(np.array([[20.0, 20.0, 20.0]]))[0] and is_tissue(np.array([[20.0, 20.0, 32.0]]))[0]
    assert not is_tissue(np.array([[2.0, 12.0, 12.0]]))[0]  # the couch is not body
    with pytest.raises(InputError, match="empty"):
        cavity_surface(np.full((8, 8, 8), -1000.0), np.eye(4))


def test_laparoscopy_scenario_from_the_bundled_ct():
    scenario = load_scenario("laparoscopy")
    names = {s.name for s in scenario.structures}
    assert {"liver", "stomach", "spleen"} <= names
    liver = next(s for s in scenario.structures if s.name == "liver")
    centre = polydata_points(liver.polydata).mean(axis=0)
    assert scenario.inside_tissue(centre)
    b = scenario.bounds
    assert not scenario.inside_tissue([b[0] - 10, b[2] - 10, b[4] - 10])


def test_trajectory_is_smooth_useful_and_deterministic():
    scenario = shapes_scenario(seed=3, n_blobs=6)
    camera = default_camera(64, 80)
    planner = PosePlanner(scenario, camera)
    poses = trajectory(scenario, 10, seed=4, camera=camera, planner=planner, frames_per_key=5)
    again = trajectory(scenario, 10, seed=4, camera=camera, planner=planner, frames_per_key=5)
    assert len(poses) == 10 and all(np.allclose(a, b) for a, b in zip(poses, again, strict=False))
    steps = [np.linalg.norm(a[:3, 3] - b[:3, 3]) for a, b in itertools.pairwise(poses)]
    assert max(steps) < 4 * np.median(steps) + 1e-6  # no jumps
    for pose in poses:
        assert np.allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-9)
        assert not scenario.inside_tissue(pose[:3, 3])
        depth, _ = planner.renderer.render_geometry(pose)
        assert (depth > 0).mean() >= scenario.strategy.min_valid_fraction


def test_useless_pose_is_rejected():
    scenario = shapes_scenario(seed=3, n_blobs=4)
    planner = PosePlanner(scenario, default_camera(64, 80))
    # looking out from far outside the chamber: sees the chamber wall only from behind at a distance
    outside = look_at(np.array([0.0, 0.0, 1000.0]), np.array([0.0, 0.0, 2000.0]))
    assert not planner.is_useful(outside)


def test_unknown_scenario_is_refused():
    with pytest.raises(InputError, match="Unknown scenario"):
        load_scenario("cardiac")


@pytest.mark.slow
def test_sinus_and_bronchoscopy_scenarios(shared_data):
    shared_data("ct/head_phantom")
    shared_data("ct/lidc_chest")
    camera = default_camera(64, 80)
    for name in ("sinus", "bronchoscopy"):
        scenario = load_scenario(name)
        planner = PosePlanner(scenario, camera)
        pose = planner.random_pose(np.random.default_rng(0))[0]
        depth, _ = planner.renderer.render_geometry(pose)
        _lo, hi = scenario.strategy.distance_mm
        assert np.median(depth[depth > 0]) < 4 * hi  # endoscopic working distances, not a view from outside
