"""Depth map to coloured point cloud: undistort, back-project, mask, voxel-downsample, vtkPolyData, PLY.

Points are in the camera frame (OpenCV: x right, y down, z forward, mm). A point cloud carries
RGB colours (``uint8``, array "RGB") and the depth of each point (array "depth_mm").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, backproject

RGB_ARRAY = "RGB"
DEPTH_ARRAY = "depth_mm"


@dataclass
class PointCloud:
    points: np.ndarray  # (N, 3) float32, camera frame, mm
    colors: np.ndarray  # (N, 3) uint8
    depth_mm: np.ndarray  # (N,) float32

    def __len__(self) -> int:
        return int(self.points.shape[0])


class Undistorter:
    """Cached OpenCV remap tables that turn a distorted frame into the pinhole image of the same K."""

    def __init__(self, camera: CameraIntrinsics):
        import cv2

        self.camera = camera
        self.pinhole = CameraIntrinsics(camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
        self._maps = None
        if camera.has_distortion:
            self._maps = cv2.initUndistortRectifyMap(
                camera.K, camera.dist_coeffs, None, camera.K, (camera.width, camera.height), cv2.CV_32FC1
            )

    def __call__(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        import cv2

        if self._maps is None:
            return image
        src = image.astype(np.uint8) if image.dtype == bool else image
        # nearest for depth and masks: interpolating across a depth edge invents points in mid-air
        out = cv2.remap(
            src,
            self._maps[0],
            self._maps[1],
            cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        return out.astype(bool) if image.dtype == bool else out


_UNDISTORT_CACHE: dict = {}


def undistorter(camera: CameraIntrinsics) -> Undistorter:
    u = _UNDISTORT_CACHE.get(camera)
    if u is None:
        if len(_UNDISTORT_CACHE) > 8:
            _UNDISTORT_CACHE.clear()
        u = _UNDISTORT_CACHE[camera] = Undistorter(camera)
    return u


def depth_to_pointcloud(
    depth_mm: np.ndarray,
    rgb: np.ndarray,
    camera: CameraIntrinsics,
    mask: np.ndarray | None = None,
    max_points: int | None = 20000,
    undistort: bool = True,
) -> PointCloud:
    """Coloured points of the valid pixels (finite depth > 0, inside ``mask``) of a depth map.

    ``depth_mm`` and ``rgb`` are at the camera's resolution, as imaged (distorted); with
    ``undistort`` they are resampled to the pinhole image first, so the back-projection is exact.
    ``max_points`` caps the cloud by voxel downsampling (None keeps every pixel).
    """
    depth = np.asarray(depth_mm, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError(f"A depth map must be 2-D, got shape {depth.shape}.")
    if rgb.shape[:2] != depth.shape:
        raise InputError(
            f"Depth map {depth.shape[1]}x{depth.shape[0]} and frame {rgb.shape[1]}x{rgb.shape[0]} differ in size."
        )
    camera.check_frame(depth.shape[1], depth.shape[0])
    pinhole = camera
    if undistort and camera.has_distortion:
        u = undistorter(camera)
        depth = u(depth, nearest=True)
        rgb = u(rgb)
        mask = (
            u(np.asarray(mask, bool), nearest=True) if mask is not None else u(np.ones(depth.shape, bool), nearest=True)
        )
        pinhole = u.pinhole
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    points = backproject(depth, pinhole, valid).astype(np.float32)
    colors = np.asarray(rgb)[valid].astype(np.uint8)
    cloud = PointCloud(points, colors, depth[valid].astype(np.float32))
    if max_points is not None and len(cloud) > max_points:
        # a pixel's footprint at the median depth seeds the voxel size
        pixel_mm = float(np.median(cloud.depth_mm)) / np.sqrt(pinhole.fx * pinhole.fy)
        cloud = voxel_downsample(cloud, max_points, pixel_mm)
    return cloud


DENSE_CELLS = 1 << 24  # voxel grids up to this many cells are counted with a flag array instead of a sort


class _VoxelGrid:
    """Voxel keys of one cloud for several edge lengths. Coordinates are kept as contiguous columns and their
    bounds found once: reductions along axis 0 of an (N, 3) array are strided and cost more than the keys."""

    def __init__(self, points: np.ndarray):
        self.columns = np.ascontiguousarray(np.asarray(points).T)
        self.lo = self.columns.min(axis=1)
        self.hi = self.columns.max(axis=1)

    def keys(self, voxel: float) -> tuple[np.ndarray, int]:
        """(flat cell id per point, number of cells); floor is monotonic, so floor(lo / voxel) is the least key."""
        first = np.floor(self.lo / voxel).astype(np.int64)
        dims = np.floor(self.hi / voxel).astype(np.int64) - first + 1
        flat = np.floor(self.columns[0] / voxel).astype(np.int64) - first[0]
        for axis in (1, 2):
            flat *= dims[axis]
            flat += np.floor(self.columns[axis] / voxel).astype(np.int64) - first[axis]
        return flat, int(dims[0] * dims[1] * dims[2])


def _occupied_count(flat: np.ndarray, total: int) -> int:
    if total <= DENSE_CELLS:
        seen = np.zeros(total, bool)
        seen[flat] = True
        return int(np.count_nonzero(seen))
    return int(np.unique(flat).size)


def _voxel_reduce(cloud: PointCloud, voxel: float, grid: _VoxelGrid | None = None) -> PointCloud:
    flat, total = (grid or _VoxelGrid(cloud.points)).keys(voxel)
    if total <= DENSE_CELLS:
        # the compact grids of one endoscope frame: flags and a look-up table (only its occupied cells are
        # ever written or read) beat a full sort
        seen = np.zeros(total, bool)
        seen[flat] = True
        occupied = np.flatnonzero(seen)
        lut = np.empty(total, np.int32)
        lut[occupied] = np.arange(occupied.size, dtype=np.int32)
        inverse = lut[flat]
        counts = np.bincount(inverse, minlength=occupied.size)
    else:
        _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    n = counts.size

    def mean(values):
        out = np.empty((n, values.shape[1]), np.float64)
        for c in range(values.shape[1]):
            out[:, c] = np.bincount(inverse, weights=values[:, c], minlength=n)
        return out / counts[:, None]

    points = mean(cloud.points).astype(np.float32)
    colors = np.clip(np.rint(mean(cloud.colors)), 0, 255).astype(np.uint8)
    depth = mean(cloud.depth_mm[:, None])[:, 0].astype(np.float32)
    return PointCloud(points, colors, depth)


def voxel_downsample(cloud: PointCloud, max_points: int, pixel_mm: float | None = None) -> PointCloud:
    """At most ``max_points`` points: each occupied voxel becomes the mean of its points (and colours).

    The first voxel edge is the one that would leave ``max_points`` points on a surface facing the
    camera (``pixel_mm``: the footprint of a pixel, else estimated from the cloud's extent); it grows
    until the budget holds. Larger edges are tried by counting occupied voxels only; the means are
    computed once, for the edge that fits.
    """
    if max_points < 1:
        raise InputError(f"The point budget must be at least 1, got {max_points}.")
    if len(cloud) <= max_points:
        return cloud
    ratio = len(cloud) / max_points
    if pixel_mm is not None and pixel_mm > 0:
        voxel = 1.15 * pixel_mm * np.sqrt(ratio)  # 15 %: a grid cut by the surface holds a few extra cells
    else:
        extent = np.ptp(cloud.points, axis=0)
        area = max(float(np.sort(extent)[1:].prod()), 1e-6)  # the two largest extents span the surface
        voxel = np.sqrt(area / max_points)
    voxel = max(float(voxel), 1e-4)
    grid = _VoxelGrid(cloud.points)
    for _ in range(39):
        count = _occupied_count(*grid.keys(voxel))
        if count <= max_points:
            break
        voxel *= max(1.05, np.sqrt(count / max_points))
    return _voxel_reduce(cloud, voxel, grid)


def points_polydata(points: np.ndarray, dtype=np.float32):
    """vtkPolyData of (N, 3) ``points`` with one vertex cell each, built without a Python loop."""
    import vtk
    from vtk.util import numpy_support

    n = len(points)
    poly = vtk.vtkPolyData()
    pts = vtk.vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype), deep=True))
    poly.SetPoints(pts)
    verts = vtk.vtkCellArray()
    offsets = numpy_support.numpy_to_vtkIdTypeArray(np.arange(n + 1, dtype=np.int64), deep=True)
    conn = numpy_support.numpy_to_vtkIdTypeArray(np.arange(n, dtype=np.int64), deep=True)
    verts.SetData(offsets, conn)
    poly.SetVerts(verts)
    return poly


def polydata_from_cloud(cloud: PointCloud):
    """vtkPolyData with one vertex cell per point, "RGB" colours (active scalars) and "depth_mm"."""
    import vtk
    from vtk.util import numpy_support

    poly = points_polydata(cloud.points)
    rgb = numpy_support.numpy_to_vtk(
        np.ascontiguousarray(cloud.colors, np.uint8), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR
    )
    rgb.SetName(RGB_ARRAY)
    poly.GetPointData().AddArray(rgb)
    poly.GetPointData().SetActiveScalars(RGB_ARRAY)
    depth = numpy_support.numpy_to_vtk(np.ascontiguousarray(cloud.depth_mm, np.float32), deep=True)
    depth.SetName(DEPTH_ARRAY)
    poly.GetPointData().AddArray(depth)
    return poly


def cloud_from_polydata(poly) -> PointCloud:
    from vtk.util import numpy_support

    n = poly.GetNumberOfPoints()
    points = (
        numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float32) if n else np.zeros((0, 3), np.float32)
    )
    rgb = poly.GetPointData().GetArray(RGB_ARRAY)
    colors = (
        numpy_support.vtk_to_numpy(rgb).astype(np.uint8).reshape(-1, 3)
        if rgb is not None
        else np.zeros((n, 3), np.uint8)
    )
    depth = poly.GetPointData().GetArray(DEPTH_ARRAY)
    depth_mm = numpy_support.vtk_to_numpy(depth).astype(np.float32) if depth is not None else points[:, 2].copy()
    return PointCloud(points, colors, depth_mm)


PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def _ply_header(n: int, fmt: str) -> bytes:
    props = "".join(f"property {kind} {name}\n" for name, kind in
                    (("x", "float"), ("y", "float"), ("z", "float"), ("red", "uchar"), ("green", "uchar"),
                     ("blue", "uchar")))
    return f"ply\nformat {fmt} 1.0\nelement vertex {n}\n{props}end_header\n".encode("ascii")


def write_ply(cloud: PointCloud | object, path: str | Path, binary: bool = True) -> Path:
    """PLY of the vertices with colours (red/green/blue), written atomically.

    Written with numpy (no VTK writer, no vtkPolyData): this is per frame in ``surgicalai depth``."""

    cloud = cloud if isinstance(cloud, PointCloud) else cloud_from_polydata(cloud)
    n = len(cloud)
    table = np.empty(n, PLY_VERTEX)
    points = np.asarray(cloud.points, np.float32).reshape(n, 3)
    colors = np.asarray(cloud.colors, np.uint8).reshape(n, 3)
    for i, axis in enumerate("xyz"):
        table[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        table[channel] = colors[:, i]
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"Cannot write point cloud {path}.")
    try:
        with atomic_file(path, ".ply") as tmp, open(tmp, "wb") as f:
            f.write(_ply_header(n, "binary_little_endian" if binary else "ascii"))
            if binary:
                table.tofile(f)
            else:
                np.savetxt(f, np.column_stack([points, colors]), fmt="%.9g %.9g %.9g %d %d %d")
    except OSError as error:
        raise InputError(f"Cannot write point cloud {path}: {error.strerror or error}.") from error
    return path


def read_ply(path: str | Path) -> PointCloud:
    """The vertices (and colours) of a PLY file, read by the checked reader (never VTK's, which crashes on
    a bad header and returns uninitialised memory for a truncated body)."""
    from SurgicalDepthLib.depth.ply_file import read_ply_arrays

    points, colors = read_ply_arrays(path)
    if colors is None:
        colors = np.zeros((len(points), 3), np.uint8)
    return PointCloud(points, colors, points[:, 2].copy())


def cloud_bounds(cloud: PointCloud) -> tuple[np.ndarray, np.ndarray]:
    return cloud.points.min(axis=0), cloud.points.max(axis=0)
