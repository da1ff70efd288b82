"""Overlay of CT structures on video: projection accuracy with distortion, fill/outline, nodes,
PNG/MP4 export, and the 3D camera following the endoscope."""
import numpy as np
import pytest
import vtk

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
from SurgicalDepthLib.overlay.follow_camera import endoscope_camera_node, follow_camera
from SurgicalDepthLib.overlay.composite import (OverlayStructure, overlay_frame, overlay_volume_node, project_ras,
                                      structure_mask, structures_from_surfaces, write_mp4, write_png)
from SurgicalDepthLib.registration.target import mesh_arrays

CAMERA = CameraIntrinsics(300.0, 310.0, 165.3, 118.7, 320, 240, (-0.25, 0.08, 0.001, -0.002, 0.0))


def _pose(rng, scale=1.0):
    pose = shapes.perturbation(35, 80, [0, 0, 0], rng)
    pose[:3, :3] *= scale
    return pose


def _distort(xn):
    """Brown-Conrady (OpenCV k1, k2, p1, p2, k3) written out here, independent of the code under test."""
    k1, k2, p1, p2, k3 = CAMERA.distortion
    x, y = xn
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    return np.array([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                     y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y])


def _ras_point_seen_at(u, v, depth, pose):
    """RAS point that the distorted camera images at pixel (u, v) at z = depth."""
    from scipy.optimize import fsolve

    target = np.array([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy])
    xn = fsolve(lambda x: _distort(x) - target, target, xtol=1e-13)
    assert np.abs(_distort(xn) - target).max() < 1e-10
    cam = np.array([xn[0] * depth, xn[1] * depth, depth])
    return shapes.apply(pose, cam[None])[0]


@pytest.mark.parametrize("scale", [1.0, 1.2])
def test_known_point_projects_to_expected_pixel_with_distortion(scale):
    rng = np.random.default_rng(1)
    pose = _pose(rng, scale)
    pixels = np.array([[165.3, 118.7], [20.0, 30.0], [300.0, 220.0], [250.5, 60.25]])
    points = np.array([_ras_point_seen_at(u, v, 80.0 * scale, pose) for u, v in pixels])
    uv, z = project_ras(points, pose, CAMERA)
    assert np.abs(uv - pixels).max() <= 0.5, np.abs(uv - pixels).max()
    assert np.allclose(z, 80.0 * scale)
    behind, _ = project_ras(shapes.apply(pose, np.array([[0, 0, -10.0]])), pose, CAMERA)
    assert np.isnan(behind).all()


def test_overlay_of_a_small_ball_is_centred_on_its_pixel():
    rng = np.random.default_rng(2)
    pose = _pose(rng)
    u, v = 60.0, 190.0  # off-centre: distortion moves it by several pixels
    centre = _ras_point_seen_at(u, v, 100.0, pose)
    s = vtk.vtkSphereSource()
    s.SetCenter(*centre)
    s.SetRadius(2.0)
    s.SetThetaResolution(64)
    s.SetPhiResolution(64)
    s.Update()
    verts, tris = mesh_arrays(s.GetOutput())
    ball = OverlayStructure("ball", verts, tris, (255, 0, 0))
    mask = structure_mask(ball, pose, CAMERA)
    rows, cols = np.nonzero(mask)
    assert 30 < mask.sum() < 400
    assert abs(cols.mean() - u) <= 0.5 and abs(rows.mean() - v) <= 0.5, (cols.mean(), rows.mean())
    # the undistorted projection would land elsewhere: the distortion really is applied
    plain = CameraIntrinsics(CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy, CAMERA.width, CAMERA.height)
    r2, c2 = np.nonzero(structure_mask(ball, pose, plain))
    assert np.hypot(c2.mean() - u, r2.mean() - v) > 3


def test_overlay_frame_blends_fill_and_outline_and_rejects_bad_input(scene, snapshot, tmp_path):
    rng = np.random.default_rng(3)
    pose = _pose(rng)
    organ = shapes.organ_polydata(radius_mm=15, resolution=40, centre=shapes.apply(pose, np.array([[0, 0, 120.0]]))[0])
    structures = structures_from_surfaces({"organ": organ}, {"organ": (0, 255, 0)})
    frame = np.full((240, 320, 3), 100, np.uint8)
    out, masks = overlay_frame(frame, structures, pose, CAMERA, opacity=0.5, outline_px=1)
    mask = masks["organ"]
    assert 0.02 < mask.mean() < 0.6 and not mask[0, 0]
    assert np.array_equal(out[~mask], frame[~mask])
    edge_or_fill = out[mask]
    assert set(map(tuple, np.unique(edge_or_fill, axis=0))) == {(50, 178, 50), (0, 255, 0)}
    # inside an endoscope's image circle only: nothing is drawn on the black border
    fov = np.zeros(frame.shape[:2], bool)
    fov[:, :160] = True
    clipped, clipped_masks = overlay_frame(frame, structures, pose, CAMERA, opacity=0.5, field_of_view=fov)
    assert mask[:, :160].any() and mask[:, 160:].any()  # the organ straddles the edge of the field
    assert np.array_equal(clipped_masks["organ"], mask & fov) and np.array_equal(clipped[:, 160:], frame[:, 160:])
    with pytest.raises(InputError, match="field-of-view"):
        overlay_frame(frame, structures, pose, CAMERA, field_of_view=fov[:10])
    snap = snapshot(scene)
    for bad, msg in [(dict(rgb=frame[:100]), "frames"), (dict(opacity=1.5), "opacity"),
                     (dict(rgb=frame[..., 0]), "RGB"), (dict(pose=np.zeros((4, 4))), "pose")]:
        args = dict(rgb=frame, opacity=0.4, pose=pose)
        args.update(bad)
        with pytest.raises(InputError, match=msg):
            overlay_frame(args["rgb"], structures, args["pose"], CAMERA, opacity=args["opacity"])
    assert snapshot(scene) == snap
    node = overlay_volume_node(scene, out, "Overlay")
    from SurgicalAICore.mrml.volumes import array_and_geometry

    arr, _ = array_and_geometry(node)
    assert arr.shape == (1, 240, 320, 3) and np.array_equal(arr[0], out)
    assert overlay_volume_node(scene, frame, node=node) is node
    assert np.array_equal(array_and_geometry(node)[0][0], frame)
    png = write_png(tmp_path / "overlay.png", out)
    import cv2

    assert np.array_equal(cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB), out)
    mp4 = write_mp4(tmp_path / "overlay.mp4", [out, frame, out], fps=5)
    cap = cv2.VideoCapture(str(mp4))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    with pytest.raises(InputError, match="No frames"):
        write_mp4(tmp_path / "empty.mp4", [])
    with pytest.raises(InputError, match="does not exist"):
        write_png(tmp_path / "missing" / "x.png", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.mp4", "overlay.png"]


def test_follow_camera_renders_like_the_endoscope(scene):
    rng = np.random.default_rng(4)
    cam = CameraIntrinsics.from_fov(320, 240, 70.0)
    pose = _pose(rng, scale=1.3)  # a similarity from scaled registration: the view must drop the scale
    node = endoscope_camera_node(scene)
    follow_camera(node, pose, cam)
    vcam = node.GetCamera()
    pts_cam = np.array([[0, 0, 50.0], [10, -5, 60.0], [-20, 15, 90.0]])
    pts_ras = shapes.apply(pose, pts_cam)
    expected, _ = project_ras(pts_ras, pose, cam)
    m = vcam.GetCompositeProjectionTransformMatrix(cam.width / cam.height, -1, 1)
    M = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    h = np.c_[pts_ras, np.ones(3)] @ M.T
    ndc = h[:, :2] / h[:, 3:4]
    got = np.c_[(ndc[:, 0] + 1) / 2 * cam.width - 0.5, (1 - ndc[:, 1]) / 2 * cam.height - 0.5]
    assert np.abs(got - expected).max() < 0.5
    assert node.GetViewAngle() == pytest.approx(70.0)
