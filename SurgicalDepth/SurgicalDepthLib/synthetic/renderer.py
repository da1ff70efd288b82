"""Synthetic endoscope frames from closed surfaces: RGB, exact metric z-depth, pose, intrinsics.

VTK renders offscreen (EGL) once per frame: every structure drawn unlit in a flat ID colour, with an
explicit OpenGL projection matrix built from the OpenCV intrinsics, so pixel (u, v) sees exactly the
ray ``((u - cx) / fx, (v - cy) / fy, 1)``. The z-buffer converts to metric depth with the known clip
planes. Shading is then done per pixel in numpy at the 3D point each pixel sees: a light at the
camera tip (its light guide optionally offset from the lens) with inverse-square falloff and
incidence-angle (Lambert, optionally wrapped for a subsurface look) shading, solid procedural tissue textures
with vessels, Blinn-Phong
specular highlights, vignetting, an optional circular field stop, blur and noise, and the camera's
lens distortion (``cv2.remap``; depth resampled nearest so no depth is invented at edges).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import vtk

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, pixel_grid
from SurgicalDepthLib.synthetic.scenarios import Scenario
from SurgicalDepthLib.synthetic.textures import TissueLook, ValueNoise3D, albedo


@dataclass
class RenderOptions:
    """Appearance of the synthetic endoscope. ``randomise`` draws new values per frame from the seed."""

    near_mm: float = 0.5
    far_mm: float = 1000.0
    exposure: float = 0.8  # auto-exposure: the 97th percentile of diffuse light maps here
    light_reference_mm: float = 40.0  # falloff reference (cancels under auto-exposure)
    ambient: float = 0.04
    specular_scale: float = 1.0
    vignetting: float = 0.35  # brightness loss at the image corner
    field_stop: bool = True  # dark circular border of a rod-lens endoscope
    field_stop_radius: float = 0.62  # fraction of the image diagonal
    blur_sigma_px: float = 0.6
    noise_sigma: float = 0.01
    gamma: float = 2.2
    randomise: bool = True  # per-frame domain randomisation from the seed
    texture_seed: int = 0  # fixed solid texture, so structures look alike across frames
    mask_field_stop_in_depth: bool = False
    # the light guide sits beside the lens, not on its axis: shadows and highlights shift slightly
    light_offset_mm: float = 0.0
    light_offset_angle_deg: float = 0.0
    # wrap lighting (0 = Lambert): light scattered under the mucosa brightens grazing surfaces
    wrap: float = 0.0


@dataclass
class RenderedFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_mm: np.ndarray  # (H, W) float32, z along the camera axis, 0 where invalid
    valid: np.ndarray  # (H, W) bool
    pose: np.ndarray  # 4x4 camera-to-RAS
    camera: CameraIntrinsics
    label: np.ndarray | None = None  # (H, W) int16 structure index, -1 for background

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())


def opengl_projection(camera: CameraIntrinsics, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix reproducing the OpenCV pinhole for VTK's view frame (x right, y up, z back).

    Pixel centres sit at integers, so the image spans u in [-0.5, W - 0.5]; OpenGL rows count from the
    bottom, which is handled by flipping the read-back rows.
    """
    w, h = camera.width, camera.height
    p = np.zeros((4, 4))
    p[0, 0] = 2.0 * camera.fx / w
    p[0, 2] = 1.0 - 2.0 * (camera.cx + 0.5) / w
    p[1, 1] = 2.0 * camera.fy / h
    p[1, 2] = 2.0 * (camera.cy + 0.5) / h - 1.0
    p[2, 2] = -(far + near) / (far - near)
    p[2, 3] = -2.0 * far * near / (far - near)
    p[3, 2] = -1.0
    return p


def zbuffer_to_depth(zbuf: np.ndarray, near: float, far: float) -> np.ndarray:
    """Metric z-depth from window depth in [0, 1] (1 = background -> 0)."""
    z_ndc = 2.0 * zbuf.astype(np.float64) - 1.0
    depth = 2.0 * far * near / ((far + near) - z_ndc * (far - near))
    depth[zbuf >= 1.0] = 0.0
    return depth.astype(np.float32)


def _check_pose(pose: np.ndarray) -> np.ndarray:
    m = np.asarray(pose, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise InputError("Camera pose must be a finite 4x4 camera-to-RAS matrix.")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise InputError("Camera pose rotation must be orthonormal and right-handed.")
    return m


class SurfaceRenderer:
    """Renders a :class:`Scenario` (or one closed vtkPolyData) through a pinhole camera."""

    def __init__(
        self,
        scenario_or_polydata: Scenario | vtk.vtkPolyData,
        camera: CameraIntrinsics,
        options: RenderOptions | None = None,
        check_inside: bool = True,
    ):
        if isinstance(scenario_or_polydata, vtk.vtkPolyData):
            scenario_or_polydata = Scenario.from_polydata(scenario_or_polydata)
        if not isinstance(scenario_or_polydata, Scenario):
            raise InputError("SurfaceRenderer needs a Scenario or a closed vtkPolyData.")
        camera.validate()
        self.scenario = scenario_or_polydata
        self.camera = camera
        self.options = options or RenderOptions()
        self.check_inside = check_inside
        self._noise = ValueNoise3D(self.options.texture_seed)
        self._build_pipeline()

    # ---------------------------------------------------------------------------------- VTK side
    def _build_pipeline(self) -> None:
        cam = self.camera
        self._window = vtk.vtkRenderWindow()
        self._window.SetOffScreenRendering(1)
        self._window.SetSize(cam.width, cam.height)
        self._window.SetMultiSamples(0)
        self._renderer = vtk.vtkRenderer()
        self._renderer.SetBackground(0, 0, 0)
        self._window.AddRenderer(self._renderer)
        self._actors: list[vtk.vtkActor] = []
        self._mappers: list[vtk.vtkPolyDataMapper] = []
        from vtk.util import numpy_support as ns

        for index, structure in enumerate(self.scenario.structures):
            # normals as vertex colours: a second, Gouraud-interpolated pass gives smooth shading normals
            poly = vtk.vtkPolyData()
            poly.ShallowCopy(structure.polydata)
            normals = ns.vtk_to_numpy(structure.polydata.GetPointData().GetNormals()).astype(np.float64)
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            colours = ns.numpy_to_vtk(
                np.round((normals + 1.0) * 127.5).clip(0, 255).astype(np.uint8),
                deep=True,
                array_type=vtk.VTK_UNSIGNED_CHAR,
            )
            colours.SetName("NormalColours")
            poly.GetPointData().SetScalars(colours)
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputData(poly)
            mapper.SetColorModeToDirectScalars()
            mapper.ScalarVisibilityOff()
            self._mappers.append(mapper)
            actor = vtk.vtkActor()
            actor.SetMapper(mapper)
            prop = actor.GetProperty()
            prop.SetColor(*self._id_colour(index))
            prop.LightingOff()  # flat ID colours: shading is done in numpy
            prop.SetInterpolationToGouraud()
            prop.BackfaceCullingOff()
            self._renderer.AddActor(actor)
            self._actors.append(actor)
        self._vtk_camera = self._renderer.GetActiveCamera()
        self._vtk_camera.SetUseExplicitProjectionTransformMatrix(True)

    @staticmethod
    def _id_colour(index: int):
        i = index + 1
        return ((i & 0xFF) / 255.0, ((i >> 8) & 0xFF) / 255.0, 0.0)

    def _clip_planes(self, pose: np.ndarray):
        b = self.scenario.bounds.reshape(3, 2)
        corners = np.array([[x, y, z] for x in b[0] for y in b[1] for z in b[2]])
        far = float(np.max(np.linalg.norm(corners - pose[:3, 3], axis=1))) * 1.01 + 1.0
        far = max(min(far, self.options.far_mm), self.options.near_mm * 10)
        return self.options.near_mm, far

    def render_geometry(self, pose_cam_to_ras: np.ndarray, with_normals: bool = False):
        """(depth_mm float32, label int16[, normals (H, W, 3) camera frame]) of one pose, without shading."""
        pose = _check_pose(pose_cam_to_ras)
        cam = self.camera
        near, far = self._clip_planes(pose)
        position = pose[:3, 3]
        vc = self._vtk_camera
        vc.SetPosition(*position)
        vc.SetFocalPoint(*(position + pose[:3, 2] * 100.0))
        vc.SetViewUp(*(-pose[:3, 1]))  # OpenCV y points down
        vc.SetClippingRange(near, far)
        m = vtk.vtkMatrix4x4()
        for r, row in enumerate(opengl_projection(cam, near, far)):
            for c, value in enumerate(row):
                m.SetElement(r, c, value)
        vc.SetExplicitProjectionTransformMatrix(m)
        self._window.Render()
        w, h = cam.width, cam.height
        zf = vtk.vtkFloatArray()
        self._window.GetZbufferData(0, 0, w - 1, h - 1, zf)
        from vtk.util import numpy_support as ns

        zbuf = ns.vtk_to_numpy(zf).reshape(h, w)[::-1]
        rgb = vtk.vtkUnsignedCharArray()
        self._window.GetPixelData(0, 0, w - 1, h - 1, 0, rgb, 0)
        ids = ns.vtk_to_numpy(rgb).reshape(h, w, 3)[::-1].astype(np.int32)
        label = (ids[..., 0] + (ids[..., 1] << 8)) - 1
        depth = zbuffer_to_depth(zbuf, near, far)
        label[depth <= 0] = -1
        depth[label < 0] = 0.0
        if with_normals:
            for mapper in self._mappers:
                mapper.ScalarVisibilityOn()
            try:
                self._window.Render()
                self._window.GetPixelData(0, 0, w - 1, h - 1, 0, rgb, 0)
            finally:
                for mapper in self._mappers:
                    mapper.ScalarVisibilityOff()
            n_ras = ns.vtk_to_numpy(rgb).reshape(h, w, 3)[::-1].astype(np.float32) / 127.5 - 1.0
            normals = n_ras @ pose[:3, :3].astype(np.float32)  # RAS -> camera frame (R^T n)
            normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
            return depth, label.astype(np.int16), normals
        return depth, label.astype(np.int16)

    # --------------------------------------------------------------------------------- rendering
    def render(self, pose_cam_to_ras: np.ndarray, seed: int | None = None) -> RenderedFrame:
        """Render one frame. Same pose and seed give the same frame."""
        pose = _check_pose(pose_cam_to_ras)
        if self.check_inside and self.scenario.inside_tissue(pose[:3, 3]):
            raise InputError("The camera is inside solid tissue; place it in air or an insufflated cavity.")
        rng = np.random.default_rng(seed)
        opt = self._randomised_options(rng) if self.options.randomise else self.options
        looks = [self._look(s.look, rng) for s in self.scenario.structures]
        depth, label, normals = self.render_geometry(pose, with_normals=True)
        rgb = self._shade(depth, label, normals, pose, looks, opt, rng)
        if self.camera.has_distortion:
            rgb, depth, label = self._distort(rgb, depth, label)
        rgb = self._lens_effects(rgb, opt, rng)
        valid = depth > 0
        if opt.field_stop and opt.mask_field_stop_in_depth:
            valid &= self._field_stop_mask(opt.field_stop_radius) > 0.5
            depth = np.where(valid, depth, 0).astype(np.float32)
        return RenderedFrame(rgb, depth, valid, pose.copy(), self.camera, label)

    def _look(self, look: TissueLook, rng: np.random.Generator) -> TissueLook:
        return look.randomised(rng) if self.options.randomise else look

    def _randomised_options(self, rng: np.random.Generator) -> RenderOptions:
        o = self.options
        return replace(
            o,
            exposure=float(np.clip(o.exposure * np.exp(rng.normal(0, 0.2)), 0.4, 1.1)),
            ambient=float(np.clip(o.ambient * np.exp(rng.normal(0, 0.5)), 0.0, 0.2)),
            specular_scale=float(o.specular_scale * np.exp(rng.normal(0, 0.4))),
            vignetting=float(np.clip(o.vignetting + rng.normal(0, 0.15), 0.0, 0.8)),
            field_stop=bool(rng.random() < 0.6) if o.field_stop else False,
            field_stop_radius=float(np.clip(o.field_stop_radius + rng.normal(0, 0.06), 0.45, 0.75)),
            blur_sigma_px=float(abs(o.blur_sigma_px + rng.normal(0, 0.4))),
            noise_sigma=float(abs(o.noise_sigma + rng.normal(0, 0.008))),
            gamma=float(np.clip(o.gamma + rng.normal(0, 0.15), 1.6, 2.8)),
            light_offset_mm=float(o.light_offset_mm + rng.uniform(0.0, 3.0)),
            light_offset_angle_deg=float(rng.uniform(0.0, 360.0)),
            wrap=float(np.clip(o.wrap + rng.uniform(0.0, 0.35), 0.0, 0.9)),
        )

    def _shade(self, depth, label, normals, pose, looks, opt: RenderOptions, rng) -> np.ndarray:
        cam = self.camera
        h, w = depth.shape
        u, v = pixel_grid(w, h)
        rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], axis=-1)
        pts_cam = rays * depth[..., None]
        if normals is None:
            normals = self._normals_from_points(pts_cam, depth > 0)
        out = np.zeros((h, w, 3), np.float32)
        valid = depth > 0
        if not valid.any():
            return out
        p = pts_cam[valid]
        n = normals[valid]
        n = np.where(np.sum(n * p, axis=1, keepdims=True) > 0, -n, n)  # back faces: shade the side we see
        to_eye = -p / np.maximum(np.linalg.norm(p, axis=1), 1e-9)[:, None]
        angle = np.radians(opt.light_offset_angle_deg)
        light = opt.light_offset_mm * np.array([np.cos(angle), np.sin(angle), 0.0])
        to_light = light - p
        dist = np.linalg.norm(to_light, axis=1)
        to_light /= np.maximum(dist, 1e-9)[:, None]
        cos = np.clip((np.sum(n * to_light, axis=1) + opt.wrap) / (1.0 + opt.wrap), 0.0, 1.0)
        half = to_light + to_eye
        half /= np.maximum(np.linalg.norm(half, axis=1), 1e-9)[:, None]
        cos_half = np.clip(np.sum(n * half, axis=1), 0.0, 1.0)
        falloff = (opt.light_reference_mm / np.maximum(dist, 1e-3)) ** 2
        pts_ras = p @ pose[:3, :3].T + pose[:3, 3]
        lab = label[valid]
        colour = np.zeros((len(p), 3), np.float32)
        spec = np.zeros(len(p), np.float32)
        for index, look in enumerate(looks):
            sel = lab == index
            if not sel.any():
                continue
            colour[sel] = albedo(pts_ras[sel], look, self._noise)
            spec[sel] = look.specular * cos_half[sel] ** look.shininess  # Blinn-Phong
        diffuse = falloff * cos
        # auto-exposure, as endoscope cameras do: brightness no longer tells absolute distance,
        # but light still falls off with depth inside the frame
        gain = opt.exposure / max(float(np.percentile(diffuse * colour.mean(axis=1), 97)), 1e-6)
        radiance = gain * (colour * diffuse[:, None] + (opt.specular_scale * falloff * spec)[:, None])
        radiance += opt.ambient * colour
        out[valid] = radiance
        return out

    @staticmethod
    def _normals_from_points(pts: np.ndarray, valid: np.ndarray) -> np.ndarray:
        # central differences where both neighbours are valid, one-sided otherwise
        def diff(axis):
            fwd = np.roll(pts, -1, axis) - pts
            bwd = pts - np.roll(pts, 1, axis)
            vf = np.roll(valid, -1, axis) & valid
            vb = np.roll(valid, 1, axis) & valid
            d = np.where(vf[..., None] & vb[..., None], 0.5 * (fwd + bwd), np.where(vf[..., None], fwd, bwd))
            return d

        du, dv = diff(1), diff(0)
        n = np.cross(du, dv)
        norm = np.linalg.norm(n, axis=-1, keepdims=True)
        n = n / np.maximum(norm, 1e-12)
        # face the camera (camera at origin): normals point against the viewing ray
        facing = np.sum(n * pts, axis=-1, keepdims=True) > 0
        n = np.where(facing, -n, n)
        n[norm[..., 0] < 1e-12] = (0, 0, -1)
        return n

    def _field_stop_mask(self, radius: float) -> np.ndarray:
        h, w = self.camera.height, self.camera.width
        u, v = pixel_grid(w, h)
        r = np.hypot(u - (w - 1) / 2, v - (h - 1) / 2) / np.hypot(w / 2, h / 2)
        edge = 0.02
        return np.clip((radius - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)

    def _lens_effects(self, radiance: np.ndarray, opt: RenderOptions, rng) -> np.ndarray:
        import cv2

        h, w = radiance.shape[:2]
        u, v = pixel_grid(w, h)
        r2 = ((u - (w - 1) / 2) ** 2 + (v - (h - 1) / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        img = radiance * (1.0 - opt.vignetting * r2)[..., None].astype(np.float32)
        if opt.blur_sigma_px > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), opt.blur_sigma_px)
        img = np.clip(img, 0.0, None) ** (1.0 / opt.gamma)
        if opt.noise_sigma > 0:
            img = img + rng.normal(0.0, opt.noise_sigma, img.shape).astype(np.float32)
        if opt.field_stop:
            img = img * self._field_stop_mask(opt.field_stop_radius)[..., None]
        return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def _distort(self, rgb, depth, label):
        """Warp an undistorted render into the distorted image of the camera."""
        import cv2

        cam = self.camera
        u, v = pixel_grid(cam.width, cam.height)
        pts = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64).reshape(-1, 1, 2)
        # for every distorted pixel, the undistorted pixel it images
        und = cv2.undistortPoints(pts, cam.K, cam.dist_coeffs, P=cam.K).reshape(cam.height, cam.width, 2)
        mx, my = und[..., 0].astype(np.float32), und[..., 1].astype(np.float32)
        rgb = cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        depth = cv2.remap(depth, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        label = cv2.remap(
            label.astype(np.float32), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=-1
        ).astype(np.int16)
        return rgb, depth, label

    def close(self) -> None:
        self._window.Finalize()
