"""The CT surface a depth point cloud is registered to, with a closest-point structure built once.

A :class:`RegistrationTarget` holds dense, area-uniform samples of the surface (RAS, mm) with their
triangle normals, plus two closest-point structures:

- a *lookup grid*: every voxel of a box around the surface stores the index of the sample nearest
  to it (a Euclidean distance transform, built once). A query is one array gather, so an ICP
  iteration on 10 000 points costs well under a millisecond, on the CPU or the GPU;
- a scipy cKDTree on the samples, exact to the sample spacing, used for the final refinement.

Point-to-plane ICP needs only a nearby tangent plane, so the grid's approximate neighbour is enough
while converging and the k-d tree removes its small curvature bias at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence

import numpy as np
import vtk
from vtk.util import numpy_support

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.transforms import parent_to_world


@dataclass
class LookupGrid:
    origin: np.ndarray  # RAS of voxel (0, 0, 0) corner
    spacing: float
    shape: tuple  # (nx, ny, nz)
    sample_index: np.ndarray  # int32, flat, x fastest

    def indices(self, points: np.ndarray) -> np.ndarray:
        ijk = np.floor((np.asarray(points, float) - self.origin) / self.spacing).astype(np.int64)
        nx, ny, nz = self.shape
        np.clip(ijk[:, 0], 0, nx - 1, out=ijk[:, 0])
        np.clip(ijk[:, 1], 0, ny - 1, out=ijk[:, 1])
        np.clip(ijk[:, 2], 0, nz - 1, out=ijk[:, 2])
        return self.sample_index[ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])]


@dataclass
class RegistrationTarget:
    """Surface samples + normals (RAS, mm), the decimated mesh, and closest-point structures."""

    name: str
    points: np.ndarray
    normals: np.ndarray
    polydata: vtk.vtkPolyData
    sample_spacing: float
    grid: LookupGrid
    segments: dict[str, vtk.vtkPolyData] = field(default_factory=dict)
    _kdtree: object = None

    @property
    def kdtree(self):
        if self._kdtree is None:
            from scipy.spatial import cKDTree

            self._kdtree = cKDTree(self.points)
        return self._kdtree

    @property
    def centroid(self) -> np.ndarray:
        return self.points.mean(axis=0)

    @property
    def bounds(self) -> np.ndarray:
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)])

    def closest(self, points: np.ndarray, exact: bool = True):
        """(sample points, normals, distances) nearest to ``points`` (N, 3)."""
        pts = np.asarray(points, float)
        if exact:
            d, idx = self.kdtree.query(pts, workers=-1)
        else:
            idx = self.grid.indices(pts)
            d = np.linalg.norm(self.points[idx] - pts, axis=1)
        return self.points[idx], self.normals[idx], d


def _triangulated(polydata: vtk.vtkPolyData) -> vtk.vtkPolyData:
    tri = vtk.vtkTriangleFilter()
    tri.SetInputData(polydata)
    tri.PassLinesOff()
    tri.PassVertsOff()
    tri.Update()
    return tri.GetOutput()


def decimate(polydata: vtk.vtkPolyData, max_triangles: int = 60000) -> vtk.vtkPolyData:
    """Triangulated copy with at most about ``max_triangles`` triangles."""
    mesh = _triangulated(polydata)
    n = mesh.GetNumberOfPolys()
    if n <= max_triangles:
        return mesh
    dec = vtk.vtkQuadricDecimation()
    dec.SetInputData(mesh)
    dec.SetTargetReduction(1.0 - max_triangles / n)
    dec.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(dec.GetOutput())
    return out


def mesh_arrays(polydata: vtk.vtkPolyData):
    """(vertices (V, 3), triangles (T, 3) int) of a triangulated mesh."""
    pts = polydata.GetPoints()
    if pts is None or polydata.GetNumberOfPolys() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    verts = numpy_support.vtk_to_numpy(pts.GetData()).astype(np.float64)
    conn = numpy_support.vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).astype(np.int64)
    offsets = numpy_support.vtk_to_numpy(polydata.GetPolys().GetOffsetsArray()).astype(np.int64)
    if not np.all(np.diff(offsets) == 3):
        polydata = _triangulated(polydata)
        return mesh_arrays(polydata)
    return verts, conn.reshape(-1, 3)


def sample_surface(verts: np.ndarray, tris: np.ndarray, spacing: float, seed: int = 0, max_samples: int = 400000):
    """Area-uniform random samples (about one per ``spacing``² of area) and their triangle normals."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    keep = double_area > 1e-12
    a, b, c, cross, double_area = a[keep], b[keep], c[keep], cross[keep], double_area[keep]
    total = 0.5 * double_area.sum()
    if len(a) == 0 or total <= 0:
        raise InputError("The registration target has no surface (no triangles with area).")
    n = int(np.clip(total / spacing**2, 2000, max_samples))
    rng = np.random.default_rng(seed)
    which = rng.choice(len(a), size=n, p=double_area / double_area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    points = a[which] + r1[:, None] * (b[which] - a[which]) + r2[:, None] * (c[which] - a[which])
    # the triangle vertices themselves are samples too, so small features are never missed
    points = np.vstack([points, verts[np.unique(tris)]])
    normals = cross / double_area[:, None]
    vert_normals = _vertex_normals(verts, tris)
    normals = np.vstack([normals[which], vert_normals[np.unique(tris)]])
    return points, normals, float(np.sqrt(total / len(points)))


def _vertex_normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    cross = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    acc = np.zeros_like(verts)
    for k in range(3):
        np.add.at(acc, tris[:, k], cross)
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return acc / np.maximum(norm, 1e-12)


def build_lookup_grid(
    points: np.ndarray, spacing: float, margin_mm: float = 40.0, max_voxels: int = 3_000_000
) -> LookupGrid:
    """Voxel grid around ``points`` whose every voxel names its nearest sample (via an EDT)."""
    from scipy import ndimage

    lo = points.min(axis=0) - margin_mm
    hi = points.max(axis=0) + margin_mm
    extent = hi - lo
    h = max(float(spacing), float((np.prod(extent) / max_voxels) ** (1.0 / 3.0)))
    shape = tuple(int(s) for s in np.ceil(extent / h).astype(int) + 1)
    ijk = np.floor((points - lo) / h).astype(np.int64)
    flat = ijk[:, 0] + shape[0] * (ijk[:, 1] + shape[1] * ijk[:, 2])
    # per occupied voxel keep the sample closest to the voxel centre
    centre_dist = np.linalg.norm(points - (lo + (ijk + 0.5) * h), axis=1)
    order = np.lexsort((centre_dist, flat))
    first = np.ones(len(order), bool)
    first[1:] = flat[order][1:] != flat[order][:-1]
    chosen = order[first]
    occupied_sample = np.full(int(np.prod(shape)), -1, np.int64)
    occupied_sample[flat[chosen]] = chosen
    occ = occupied_sample.reshape(shape[2], shape[1], shape[0]) >= 0  # [z, y, x]
    _, nearest = ndimage.distance_transform_edt(~occ, return_distances=True, return_indices=True)
    nz, ny, nx = nearest[0], nearest[1], nearest[2]
    near_flat = nx + shape[0] * (ny + shape[1] * nz)
    table = occupied_sample[near_flat.ravel()].astype(np.int32)
    return LookupGrid(origin=lo, spacing=h, shape=shape, sample_index=table)


def target_from_polydata(
    polydata: vtk.vtkPolyData,
    name: str = "target",
    sample_spacing_mm: float = 0.7,
    grid_spacing_mm: float = 1.0,
    max_triangles: int = 60000,
    segments: dict[str, vtk.vtkPolyData] | None = None,
    seed: int = 0,
) -> RegistrationTarget:
    """Build a target from a surface mesh in RAS (mm)."""
    if polydata is None or polydata.GetNumberOfPoints() == 0:
        raise InputError(f"The registration target '{name}' has no surface (empty mesh).")
    mesh = decimate(polydata, max_triangles)
    verts, tris = mesh_arrays(mesh)
    if len(tris) == 0:
        raise InputError(f"The registration target '{name}' has no surface (no triangles).")
    points, normals, spacing = sample_surface(verts, tris, sample_spacing_mm, seed)
    grid = build_lookup_grid(points, grid_spacing_mm)
    return RegistrationTarget(name, points, normals, mesh, spacing, grid, dict(segments or {}))


def append_polydata(meshes: Iterable[vtk.vtkPolyData]) -> vtk.vtkPolyData:
    app = vtk.vtkAppendPolyData()
    for m in meshes:
        app.AddInputData(m)
    app.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(app.GetOutput())
    return out


def transform_polydata(polydata: vtk.vtkPolyData, matrix: np.ndarray) -> vtk.vtkPolyData:
    t = vtk.vtkTransform()
    t.SetMatrix(np.asarray(matrix, float).ravel().tolist())
    f = vtk.vtkTransformPolyDataFilter()
    f.SetInputData(polydata)
    f.SetTransform(t)
    f.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(f.GetOutput())
    return out


def segment_surfaces(segmentation_node, segment_names: Sequence[str] | None = None) -> dict[str, vtk.vtkPolyData]:
    """Closed surfaces (RAS, world) of the chosen segments (by name or ID; all when None), name -> mesh.

    Creates the closed-surface representation if the segmentation lacks it (this changes no
    segment content)."""
    if segmentation_node is None:
        raise InputError("No segmentation was given as registration target.")
    seg = segmentation_node.GetSegmentation()
    ids = [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]
    if not ids:
        raise InputError(f"Segmentation '{segmentation_node.GetName()}' has no segments.")
    by_name = {seg.GetSegment(i).GetName(): i for i in ids}
    if segment_names:
        chosen = []
        for s in segment_names:
            if s in ids:
                chosen.append(s)
            elif s in by_name:
                chosen.append(by_name[s])
            else:
                raise InputError(
                    f"Segment '{s}' is not in '{segmentation_node.GetName()}' "
                    f"(it has: {', '.join(sorted(by_name)[:12])}{'...' if len(by_name) > 12 else ''})."
                )
    else:
        chosen = ids
    from SurgicalAICore.mrml.segmentations import register_segmentation_converters

    register_segmentation_converters()
    segmentation_node.CreateClosedSurfaceRepresentation()
    world = parent_to_world(segmentation_node)
    out: dict[str, vtk.vtkPolyData] = {}
    for sid in chosen:
        mesh = segmentation_node.GetClosedSurfaceInternalRepresentation(sid)
        if mesh is None or mesh.GetNumberOfPolys() == 0:
            continue
        copy = vtk.vtkPolyData()
        copy.DeepCopy(mesh)
        out[seg.GetSegment(sid).GetName()] = transform_polydata(copy, world) if world is not None else copy
    if not out:
        raise InputError(f"The chosen segments of '{segmentation_node.GetName()}' have no surface (they are empty).")
    return out


def target_from_segmentation(
    segmentation_node, segment_names: Sequence[str] | None = None, **kwargs
) -> RegistrationTarget:
    """Target from the closed surfaces of the chosen segments of a ``vtkMRMLSegmentationNode``."""
    surfaces = segment_surfaces(segmentation_node, segment_names)
    return target_from_polydata(
        append_polydata(surfaces.values()), name=segmentation_node.GetName(), segments=surfaces, **kwargs
    )


def threshold_surface(
    array: np.ndarray, ijk_to_ras: np.ndarray, threshold: float, max_voxels: int = 8_000_000
) -> vtk.vtkPolyData:
    """Isosurface at ``threshold`` of a [k, j, i] volume, in RAS; the volume is strided if large."""
    from SurgicalAICore.mrml.volumes import image_data_from_array

    arr = np.asarray(array)
    if arr.ndim != 3:
        raise InputError("The threshold target needs a scalar 3-D volume.")
    step = max(1, int(np.ceil((arr.size / max_voxels) ** (1 / 3))))
    sub = np.ascontiguousarray(arr[::step, ::step, ::step]).astype(np.float32)
    if not (np.nanmin(sub) < threshold < np.nanmax(sub)):
        raise InputError(
            f"Threshold {threshold} is outside the volume's range "
            f"[{float(np.nanmin(arr)):.1f}, {float(np.nanmax(arr)):.1f}]: no surface."
        )
    image = image_data_from_array(sub)
    iso = vtk.vtkFlyingEdges3D()
    iso.SetInputData(image)
    iso.SetValue(0, float(threshold))
    iso.ComputeNormalsOff()
    iso.Update()
    m = np.asarray(ijk_to_ras, float) @ np.diag([step, step, step, 1.0])
    return transform_polydata(iso.GetOutput(), m)


def target_from_threshold(volume_node, threshold: float, **kwargs) -> RegistrationTarget:
    """Target from the isosurface of a CT volume node at ``threshold`` (e.g. -500 HU for air/tissue)."""
    from SurgicalAICore.mrml.volumes import array_and_geometry

    array, ijk_to_ras = array_and_geometry(volume_node)
    world = parent_to_world(volume_node)
    if world is not None:
        ijk_to_ras = world @ ijk_to_ras
    mesh = threshold_surface(array, ijk_to_ras, threshold)
    return target_from_polydata(mesh, name=f"{volume_node.GetName()} > {threshold:g}", **kwargs)
