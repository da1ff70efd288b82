"""Renderer geometry: rendered z-depth back-projected with the intrinsics and pose lands on the surface."""
import numpy as np
import pytest
import vtk

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, backproject, transform_points
from SurgicalDepthLib.synthetic.camera_paths import look_at
from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer, zbuffer_to_depth
from SurgicalDepthLib.synthetic.scenarios import Scenario, check_closed_surface

CENTRE = np.array([10.0, 20.0, 30.0])
RADIUS = 25.0


def sphere(centre=CENTRE, radius=RADIUS, resolution=240):
    s = vtk.vtkSphereSource()
    s.SetCenter(*centre)
    s.SetRadius(radius)
    s.SetThetaResolution(resolution)
    s.SetPhiResolution(resolution)
    s.Update()
    return s.GetOutput()


def capped_cylinder(radius=15.0, height=80.0, resolution=400):
    c = vtk.vtkCylinderSource()  # axis along y, centred at the origin
    c.SetRadius(radius)
    c.SetHeight(height)
    c.SetResolution(resolution)
    c.CappingOn()
    tri = vtk.vtkTriangleFilter()
    tri.SetInputConnection(c.GetOutputPort())
    clean = vtk.vtkCleanPolyData()
    clean.SetInputConnection(tri.GetOutputPort())
    clean.Update()
    return clean.GetOutput()


# fx != fy and a principal point well off the centre: the projection must still be exact
SKEWED = CameraIntrinsics(300.0, 240.0, 140.3, 110.7, 320, 256)


@pytest.mark.parametrize("camera", [SKEWED, CameraIntrinsics.from_fov(160, 128, 70.0)])
def test_sphere_depth_backprojects_onto_the_sphere(camera):
    renderer = SurfaceRenderer(sphere(), camera, RenderOptions(randomise=False))
    pose = look_at(CENTRE + np.array([5.0, -70.0, 8.0]), CENTRE + np.array([3.0, 0.0, -4.0]), roll_rad=0.4)
    frame = renderer.render(pose, seed=0)
    assert frame.rgb.shape == (camera.height, camera.width, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_mm.dtype == np.float32 and 0.1 < frame.valid_fraction < 0.95
    assert np.all(frame.depth_mm[~frame.valid] == 0)
    points = transform_points(frame.pose, backproject(frame.depth_mm, camera, frame.valid))
    error = np.abs(np.linalg.norm(points - CENTRE, axis=1) - RADIUS)
    assert error.mean() <= 0.1 and np.percentile(error, 99) < 0.3
    # the silhouette is where the pinhole says: the sphere's centre projects inside the valid region
    c_cam = transform_points(np.linalg.inv(pose), CENTRE[None])[0]
    u = camera.fx * c_cam[0] / c_cam[2] + camera.cx
    v = camera.fy * c_cam[1] / c_cam[2] + camera.cy
    assert frame.valid[round(v), round(u)]
    # nearest depth equals the analytic distance to the sphere along the axis through the centre
    assert abs(frame.depth_mm[frame.valid].min() - (np.linalg.norm(c_cam) - RADIUS)) < 0.5


def test_cylinder_depth_backprojects_onto_the_cylinder():
    poly = capped_cylinder()
    renderer = SurfaceRenderer(poly, SKEWED, RenderOptions(randomise=False))
    pose = look_at(np.array([0.0, 10.0, -60.0]), np.array([0.0, 0.0, 0.0]), roll_rad=-0.3)
    frame = renderer.render(pose, seed=1)
    points = transform_points(pose, backproject(frame.depth_mm, SKEWED, frame.valid))
    side = np.abs(points[:, 1]) < 39.0  # away from the caps
    assert side.sum() > 1000
    error = np.abs(np.hypot(points[side, 0], points[side, 2]) - 15.0)
    assert error.mean() <= 0.1


def test_distorted_camera_depth_is_still_exact():
    camera = CameraIntrinsics(220.0, 210.0, 150.0, 118.0, 320, 256, (-0.25, 0.08, 0.001, -0.001, 0.0))
    renderer = SurfaceRenderer(sphere(), camera, RenderOptions(randomise=False))
    frame = renderer.render(look_at(CENTRE + np.array([0.0, -60.0, 0.0]), CENTRE), seed=0)
    import cv2

    v, u = np.nonzero(frame.valid)
    und = cv2.undistortPoints(np.stack([u, v], 1).astype(np.float64).reshape(-1, 1, 2), camera.K,
                              camera.dist_coeffs).reshape(-1, 2)
    z = frame.depth_mm[v, u].astype(np.float64)
    pts = transform_points(frame.pose, np.stack([und[:, 0] * z, und[:, 1] * z, z], 1))
    error = np.abs(np.linalg.norm(pts - CENTRE, axis=1) - RADIUS)
    # nearest-neighbour depth resampling: exact inside, one pixel of slack at the silhouette
    assert np.median(error) < 0.05 and error.mean() < 0.5


def test_zbuffer_conversion_is_exact_at_the_clip_planes():
    z = zbuffer_to_depth(np.array([0.0, 1.0, 0.5]), 2.0, 200.0)
    assert z[0] == pytest.approx(2.0) and z[1] == 0.0
    assert z[2] == pytest.approx(2 * 200 * 2 / (202.0), rel=1e-6)


def test_same_seed_same_frame_other_seed_other_frame():
    renderer = SurfaceRenderer(sphere(), SKEWED)
    pose = look_at(CENTRE + np.array([0.0, -60.0, 0.0]), CENTRE)
    a, b, c = renderer.render(pose, seed=7), renderer.render(pose, seed=7), renderer.render(pose, seed=8)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth_mm, b.depth_mm)
    assert not np.array_equal(a.rgb, c.rgb)
    assert np.array_equal(a.depth_mm, c.depth_mm)  # appearance is randomised, geometry never


def test_appearance_falls_off_with_distance_and_has_a_field_stop():
    opts = RenderOptions(randomise=False, field_stop=True, noise_sigma=0.0, vignetting=0.0)
    renderer = SurfaceRenderer(sphere(radius=400.0, centre=(0, 0, 0)), CameraIntrinsics.from_fov(160, 128, 90),
                               opts, check_inside=False)
    # inside a big sphere looking at its wall obliquely: nearer wall parts must be brighter
    frame = renderer.render(look_at(np.array([0.0, 0.0, 300.0]), np.array([0.0, 300.0, 250.0])), seed=0)
    assert frame.rgb[0, 0].max() == 0  # corner is behind the field stop
    grey = frame.rgb.mean(axis=2)
    inside = renderer._field_stop_mask(opts.field_stop_radius) > 0.99
    near = frame.depth_mm < np.percentile(frame.depth_mm[inside], 25)
    far = frame.depth_mm > np.percentile(frame.depth_mm[inside], 75)
    assert grey[near & inside].mean() > grey[far & inside].mean()


def test_camera_inside_solid_tissue_is_refused():
    renderer = SurfaceRenderer(sphere(), SKEWED)
    with pytest.raises(InputError, match="inside solid tissue"):
        renderer.render(look_at(CENTRE, CENTRE + np.array([0.0, 0.0, 10.0])))


def test_empty_and_open_surfaces_are_refused():
    with pytest.raises(InputError, match="empty"):
        SurfaceRenderer(vtk.vtkPolyData(), SKEWED)
    plane = vtk.vtkPlaneSource()
    plane.SetResolution(4, 4)
    tri = vtk.vtkTriangleFilter()
    tri.SetInputConnection(plane.GetOutputPort())
    tri.Update()
    with pytest.raises(InputError, match="not closed"):
        SurfaceRenderer(tri.GetOutput(), SKEWED)
    with pytest.raises(InputError, match="not closed"):
        check_closed_surface(tri.GetOutput())


def test_bad_intrinsics_and_poses_are_refused():
    with pytest.raises(InputError, match="focal"):
        CameraIntrinsics(0.0, 200.0, 100.0, 100.0, 200, 200)
    with pytest.raises(InputError, match="outside"):
        CameraIntrinsics(200.0, 200.0, 250.0, 100.0, 200, 200)
    renderer = SurfaceRenderer(sphere(), SKEWED)
    bad = np.eye(4)
    bad[0, 0] = -1.0  # a reflection, not a rotation
    bad[:3, 3] = CENTRE + np.array([0.0, -80.0, 0.0])
    with pytest.raises(InputError, match="right-handed"):
        renderer.render(bad)
    with pytest.raises(InputError, match="4x4"):
        renderer.render(np.eye(3))


def test_scenario_from_polydata_needs_a_closed_surface():
    scenario = Scenario.from_polydata(sphere())
    assert scenario.inside_tissue(CENTRE) and not scenario.inside_tissue(CENTRE + 100)


def test_offset_light_and_wrap_lighting():
    """A light guide beside the lens shifts the shading; wrap lighting brightens grazing tissue most."""
    base = RenderOptions(randomise=False, field_stop=False, noise_sigma=0.0, vignetting=0.0, blur_sigma_px=0.0,
                         exposure=0.25, specular_scale=0.0)  # no saturation, no highlights: shading only
    cam = CameraIntrinsics.from_fov(160, 128, 90)
    pose = look_at(np.array([0.0, -30.0, 5.0]), np.array([0.0, 40.0, 0.0]))  # inside the tube, along its axis
    tube = capped_cylinder()
    frames = {}
    for name, opts in {"axis": base, "offset": RenderOptions(**{**base.__dict__, "light_offset_mm": 8.0}),
                       "wrap": RenderOptions(**{**base.__dict__, "wrap": 0.6})}.items():
        frames[name] = SurfaceRenderer(tube, cam, opts, check_inside=False).render(pose, seed=0)
    assert np.array_equal(frames["axis"].depth_mm, frames["offset"].depth_mm)  # geometry never changes
    assert not np.array_equal(frames["axis"].rgb, frames["offset"].rgb)
    depth, _, normals = SurfaceRenderer(tube, cam, base, check_inside=False).render_geometry(pose, with_normals=True)
    u, v = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
    p = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones(u.shape)], axis=-1)
    cos = np.abs(np.sum(normals * p, axis=-1)) / np.linalg.norm(p, axis=-1)
    lit = (depth > 0) & (frames["axis"].rgb.mean(axis=2) > 10)
    ratio = frames["wrap"].rgb.mean(axis=2) / np.maximum(frames["axis"].rgb.mean(axis=2), 1)
    grazing, facing = lit & (cos < np.percentile(cos[lit], 25)), lit & (cos > np.percentile(cos[lit], 75))
    assert ratio[grazing].mean() > ratio[facing].mean()
