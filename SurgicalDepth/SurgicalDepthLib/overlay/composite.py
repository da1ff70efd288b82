"""Overlay CT structures on the endoscope video: project segment surfaces with the registered pose,
the intrinsics and the lens distortion; alpha-blended fill (x-ray view: hidden structures show) and
outlines; an overlay image node; PNG and MP4 export.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence

import numpy as np

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, project

SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point: 1/16 pixel
FILL_GROUPS = 3

DEFAULT_COLORS = [(255, 64, 64), (64, 160, 255), (255, 210, 0), (80, 220, 120), (200, 90, 255), (255, 140, 40)]


@dataclass
class OverlayStructure:
    name: str
    vertices: np.ndarray   # (V, 3) RAS mm
    triangles: np.ndarray  # (T, 3) int
    color: tuple[int, int, int]
    # what the per-frame drawing needs from the mesh, worked out once (dataclasses.replace carries it over)
    geometry: StructureGeometry | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.geometry is None:
            self.geometry = StructureGeometry.of(self.triangles)


@dataclass
class StructureGeometry:
    """Per-mesh facts the fast silhouette uses every frame, worked out once: the triangles and their corner
    indices as columns, and the fill group of each triangle (the reference's draws, see :func:`structure_mask`)."""

    triangles: np.ndarray  # (T, 3) int64
    corners: tuple[np.ndarray, np.ndarray, np.ndarray]
    groups: np.ndarray

    @classmethod
    def of(cls, triangles: np.ndarray) -> StructureGeometry:
        tris = np.asarray(triangles, np.int64).reshape(-1, 3)
        groups = np.random.default_rng(0).integers(0, FILL_GROUPS, len(tris))
        return cls(tris, (tris[:, 0].copy(), tris[:, 1].copy(), tris[:, 2].copy()), groups)


def structures_from_surfaces(surfaces: dict[str, object], colors: dict[str, Sequence[int]] | None = None,
                             max_triangles: int = 5000) -> list[OverlayStructure]:
    """OverlayStructures from named vtkPolyData surfaces (e.g. :func:`segment_surfaces`), each decimated to
    about ``max_triangles``: the per-frame cost of the overlay grows with the triangles drawn, and 5000 per
    structure already outline an organ within a pixel at 256 x 320 (the synthetic organ from 120-200 mm: every
    pixel that differs from its 40 000-triangle outline lies within 1 px of it), as ``bench_latency.py`` runs."""
    from SurgicalDepthLib.registration.target import decimate, mesh_arrays

    out = []
    for i, (name, poly) in enumerate(surfaces.items()):
        verts, tris = mesh_arrays(decimate(poly, max_triangles))
        if len(tris) == 0:
            continue
        color = tuple(int(c) for c in (colors or {}).get(name, DEFAULT_COLORS[i % len(DEFAULT_COLORS)]))
        out.append(OverlayStructure(name, verts, tris, color))
    if not out:
        raise InputError("None of the chosen segments has a surface to overlay.")
    return out


def ras_to_camera(points_ras: np.ndarray, pose_cam_to_ras: np.ndarray) -> np.ndarray:
    """Camera-frame points from RAS points; ``pose`` may carry a uniform scale (similarity)."""
    pose = np.asarray(pose_cam_to_ras, float)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)) or abs(np.linalg.det(pose[:3, :3])) < 1e-12:
        raise InputError("The camera pose must be a finite, invertible 4x4 matrix.")
    inv = np.linalg.inv(pose)
    return np.asarray(points_ras, float) @ inv[:3, :3].T + inv[:3, 3]


def project_ras(points_ras: np.ndarray, pose_cam_to_ras: np.ndarray, camera: CameraIntrinsics):
    """(pixels (N, 2) with distortion, camera-frame z (N,)) of RAS points. Points with z <= 0 get NaN pixels."""
    cam = ras_to_camera(points_ras, pose_cam_to_ras)
    uv = np.full((len(cam), 2), np.nan)
    front = cam[:, 2] > 1e-6
    if front.any():
        uv[front] = project(cam[front], camera)
    return uv, cam[:, 2]


def _max_normalised_radius(camera: CameraIntrinsics) -> float:
    corners = np.array([[0, 0], [camera.width, 0], [0, camera.height], [camera.width, camera.height]], float)
    xn = (corners[:, 0] - camera.cx) / camera.fx
    yn = (corners[:, 1] - camera.cy) / camera.fy
    # beyond ~1.3x the corner radius the distortion polynomial can fold points back into the image
    return 1.3 * float(np.sqrt(xn ** 2 + yn ** 2).max())


def structure_mask(structure: OverlayStructure, pose_cam_to_ras: np.ndarray, camera: CameraIntrinsics,
                   near_mm: float = 1.0) -> np.ndarray:
    """Boolean (H, W) silhouette of a structure seen through the camera (every triangle in front)."""
    import cv2

    cam = ras_to_camera(structure.vertices, pose_cam_to_ras)
    z = cam[:, 2]
    ok_vert = z > near_mm
    r = np.full(len(cam), np.inf)
    r[ok_vert] = np.hypot(cam[ok_vert, 0] / z[ok_vert], cam[ok_vert, 1] / z[ok_vert])
    ok_vert &= r <= _max_normalised_radius(camera)
    tris = structure.triangles[ok_vert[structure.triangles].all(axis=1)]
    mask = np.zeros((camera.height, camera.width), np.uint8)
    if len(tris) == 0:
        return mask.astype(bool)
    used = np.unique(tris)
    uv = np.zeros((len(cam), 2))
    uv[used] = project(cam[used], camera)
    # pixel centres are at integers; fillPoly's fixed point uses the same convention
    fixed = np.round(uv * (1 << SUBPIXEL_BITS)).astype(np.int32)
    polys = np.ascontiguousarray(fixed[tris])
    lim = np.int32(2 ** 30 >> SUBPIXEL_BITS)
    polys = np.clip(polys, -lim, lim)
    # fillPoly fills many polygons with the even-odd rule, so overlapping triangles (front and back of
    # a closed surface, folds) would cancel. Triangles facing the camera tile the silhouette, as do
    # those facing away: fill each facing separately, in a few random groups, and take the union.
    e1 = (polys[:, 1] - polys[:, 0]).astype(np.float64)
    e2 = (polys[:, 2] - polys[:, 0]).astype(np.float64)
    facing = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0
    group = np.random.default_rng(0).integers(0, FILL_GROUPS, len(polys))
    # triangles wholly outside the frame draw nothing: most of a structure is off-screen in a close-up view, and
    # fillPoly's cost grows with the triangles it is given (groups are drawn before culling: the same picture)
    lo, hi = polys.min(axis=1), polys.max(axis=1)
    on_screen = ((hi[:, 0] >= 0) & (lo[:, 0] <= camera.width << SUBPIXEL_BITS)
                 & (hi[:, 1] >= 0) & (lo[:, 1] <= camera.height << SUBPIXEL_BITS))
    polys, facing, group = polys[on_screen], facing[on_screen], group[on_screen]
    layer = np.zeros_like(mask)
    for side in (True, False):
        for g in range(FILL_GROUPS):
            sel = polys[(facing == side) & (group == g)]
            if len(sel):
                layer[:] = 0
                cv2.fillPoly(layer, sel, 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
                mask |= layer
    return mask.astype(bool)


def silhouette(structure: OverlayStructure, pose_cam_to_ras: np.ndarray, camera: CameraIntrinsics,
               near_mm: float = 1.0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(mask, box): :func:`structure_mask`'s silhouette, pixel for pixel, at about half its cost (profile in
    docs/BENCHMARKS_latency.md). ``box`` (y0, y1, x0, x1) bounds the drawn triangles; the mask is all False
    outside it. The same projection, culling, fill groups and fill passes, in flat-column arithmetic on geometry
    worked out once per mesh, filled into the box only. (Filling one facing of a closed mesh would halve the
    fill again, but leaves holes where same-facing triangles overlap in a pass, which the other facing covers.)"""
    import cv2

    g = structure.geometry or StructureGeometry.of(structure.triangles)
    cam = ras_to_camera(structure.vertices, pose_cam_to_ras)
    mask = np.zeros((camera.height, camera.width), bool)
    z = cam[:, 2]
    ok = z > near_mm
    zs = np.where(ok, z, 1.0)
    ok &= (cam[:, 0] / zs) ** 2 + (cam[:, 1] / zs) ** 2 <= _max_normalised_radius(camera) ** 2
    a, b, c = g.corners
    valid = ok[a] & ok[b] & ok[c]
    n_valid = int(valid.sum())
    if n_valid == 0:
        return mask, (0, 0, 0, 0)
    fixed = np.zeros((len(cam), 2), np.int32)
    lim = 2 ** 30 >> SUBPIXEL_BITS
    fixed[ok] = np.clip(np.round(project(cam[ok], camera) * (1 << SUBPIXEL_BITS)), -lim, lim).astype(np.int32)
    # numpy's gathers and arithmetic on (T, 3, 2) slices are strided and several times slower than on flat
    # columns: corners' coordinates as 1-D columns, and the polygons as one gather of (u, v) pairs read as int64
    if n_valid < len(valid):
        a, b, c = a[valid], b[valid], c[valid]
        polys = fixed.view(np.int64)[:, 0][g.triangles[valid]]
    else:
        polys = fixed.view(np.int64)[:, 0][g.triangles]
    polys = polys.view(np.int32).reshape(-1, 3, 2)
    # the reference numbers the kept triangles' groups afresh; its generator's draws are a prefix of these
    groups = g.groups[:n_valid]
    u, v = np.ascontiguousarray(fixed[:, 0]), np.ascontiguousarray(fixed[:, 1])
    xa, xb, xc, ya, yb, yc = u[a], u[b], u[c], v[a], v[b], v[c]
    facing = (xb - xa).astype(np.float64) * (yc - ya) - (yb - ya).astype(np.float64) * (xc - xa) > 0
    lo_x, hi_x = np.minimum(np.minimum(xa, xb), xc), np.maximum(np.maximum(xa, xb), xc)
    lo_y, hi_y = np.minimum(np.minimum(ya, yb), yc), np.maximum(np.maximum(ya, yb), yc)
    keep = ((hi_x >= 0) & (lo_x <= camera.width << SUBPIXEL_BITS)
            & (hi_y >= 0) & (lo_y <= camera.height << SUBPIXEL_BITS))
    if not keep.any():
        return mask, (0, 0, 0, 0)
    x0 = max(0, int(lo_x[keep].min()) >> SUBPIXEL_BITS)
    y0 = max(0, int(lo_y[keep].min()) >> SUBPIXEL_BITS)
    x1 = min(camera.width, (int(hi_x[keep].max()) >> SUBPIXEL_BITS) + 2)
    y1 = min(camera.height, (int(hi_y[keep].max()) >> SUBPIXEL_BITS) + 2)
    crop = mask[y0:y1, x0:x1].view(np.uint8)
    layer = np.zeros_like(crop)
    shift = (-(x0 << SUBPIXEL_BITS), -(y0 << SUBPIXEL_BITS))
    for side in (True, False):
        for k in range(FILL_GROUPS):
            sel = np.compress(keep & (facing == side) & (groups == k), polys, axis=0)
            if len(sel):
                layer[:] = 0
                cv2.fillPoly(layer, sel, 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS, offset=shift)
                crop |= layer
    return mask, (y0, y1, x0, x1)


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    import cv2

    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return mask & ~inner


def overlay_frame(rgb: np.ndarray, structures: Iterable[OverlayStructure], pose_cam_to_ras: np.ndarray,
                  camera: CameraIntrinsics, opacity: float = 0.35, outline_px: int = 1,
                  field_of_view: np.ndarray | None = None, fast: bool = True,
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(overlaid RGB uint8, name -> silhouette mask). ``rgb`` must match the camera's size.

    ``fast`` draws with :func:`silhouette` and blends inside each structure's box; ``fast=False`` is the
    reference (:func:`structure_mask`, whole-frame blending), kept to test the fast path against.
    ``field_of_view`` (H x W bool, e.g. from ``frame_prep.field_stop_mask``) keeps the overlay inside
    the endoscope's image circle: nothing is drawn on the black border."""
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"The video frame must be an (H, W, 3) RGB image, got shape {img.shape}.")
    camera.check_frame(img.shape[1], img.shape[0])
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"Overlay opacity must be between 0 and 1, got {opacity}.")
    if field_of_view is not None and np.shape(field_of_view) != img.shape[:2]:
        raise InputError(f"The field-of-view mask {np.shape(field_of_view)} does not match the frame {img.shape[:2]}.")
    out = img.astype(np.float32)
    masks = {}
    for s in structures:
        if fast:
            mask, (y0, y1, x0, x1) = silhouette(s, pose_cam_to_ras, camera)
        else:
            mask, (y0, y1, x0, x1) = structure_mask(s, pose_cam_to_ras, camera), (0, img.shape[0], 0, img.shape[1])
        if field_of_view is not None:
            mask &= np.asarray(field_of_view, bool)
        masks[s.name] = mask
        color = np.asarray(s.color, np.float32)
        # the mask is empty outside its box: blending and outlining the box is the whole frame's work
        box, sub = out[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        if fast:  # the box blended whole and copied where the mask is: no gather and scatter of masked pixels
            np.copyto(box, (1 - opacity) * box + opacity * color, where=sub[..., None])
        else:
            box[sub] = (1 - opacity) * box[sub] + opacity * color
        if outline_px > 0 and sub.size:
            box[_outline(sub, outline_px)] = color
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), masks


def overlay_volume_node(scene, rgb: np.ndarray, name: str = "Overlay", node=None):
    """Show an overlaid frame as a single-slice vector volume (same geometry as the video frames);
    updates ``node`` if given, else adds a new node once the image is ready."""
    from SurgicalAICore.mrml.volumes import image_data_from_array
    from SurgicalAICore.mrml.transforms import vtk_matrix_from_numpy

    img = np.asarray(rgb, np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"The overlay must be an (H, W, 3) RGB image, got shape {img.shape}.")
    image = image_data_from_array(img[None])
    geometry = vtk_matrix_from_numpy(np.diag([-1.0, -1.0, 1.0, 1.0]))
    if node is None:
        import slicer

        node = slicer.vtkMRMLVectorVolumeNode()
        node.SetName(name)
        node.SetAndObserveImageData(image)
        node.SetIJKToRASMatrix(geometry)
        node.SetAttribute("SurgicalDepth.Role", "overlay")
        scene.AddNode(node)
        node.CreateDefaultDisplayNodes()
    else:
        node.SetAndObserveImageData(image)
        node.SetIJKToRASMatrix(geometry)
        node.Modified()
    return node


def _output_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"Output folder {path.parent} does not exist.")
    return path


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    import cv2

    path = _output_path(path)
    with atomic_file(path, ".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)):
            raise InputError(f"Could not write {path}.")
    return path


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    """MP4 (mpeg4 video) of RGB frames of one size; written to a temporary file then renamed."""
    import cv2

    frames = list(frames)
    if not frames:
        raise InputError("No frames to write to the video.")
    h, w = frames[0].shape[:2]
    if any(f.shape[:2] != (h, w) for f in frames):
        raise InputError("All video frames must have the same size.")
    path = _output_path(path)
    with atomic_file(path, ".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise InputError("This OpenCV build cannot write MP4 video.")
        for f in frames:
            writer.write(cv2.cvtColor(np.asarray(f, np.uint8), cv2.COLOR_RGB2BGR))
        writer.release()
        if tmp.stat().st_size == 0:
            raise InputError(f"Writing {path} produced an empty file.")
    return path
