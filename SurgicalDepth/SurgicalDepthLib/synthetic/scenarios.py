"""Closed CT-derived surfaces and the scenarios the synthetic endoscope renders.

A :class:`Scenario` is a list of closed RAS surfaces (one per structure, with a tissue look), a
test for "is this point inside solid tissue" and a camera-placement strategy. Surface normals point
out of the tissue into the air or gas the endoscope moves in.

Scenarios:
- ``laparoscopy``: abdominal organs from the bundled TotalSegmentator example CT and its reference
  labels (shippable, CC BY 4.0).
- ``sinus``: the nasal cavity and sinuses of the head phantom CT (``../shared/data/ct/head_phantom``,
  development only: renders may be used for training, the CT is never shipped).
- ``bronchoscopy``: the airway lumen of the LIDC-IDRI-0314 chest CT (``ct/lidc_chest``, CC BY 3.0).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np
import vtk
from vtk.util import numpy_support as ns

from SurgicalAICore.errors import InputError

from SurgicalDepthLib.synthetic.textures import TissueLook, look_for

SCENARIOS = ("laparoscopy", "sinus", "bronchoscopy", "shapes")


# ----------------------------------------------------------------------------------------- checks
def polydata_points(poly: vtk.vtkPolyData) -> np.ndarray:
    pts = poly.GetPoints()
    return np.zeros((0, 3)) if pts is None else ns.vtk_to_numpy(pts.GetData()).astype(np.float64)


def polydata_normals(poly: vtk.vtkPolyData) -> np.ndarray:
    normals = poly.GetPointData().GetNormals()
    if normals is None:
        raise InputError("Surface has no point normals.")
    return ns.vtk_to_numpy(normals).astype(np.float64)


def check_closed_surface(poly: vtk.vtkPolyData, name: str = "surface") -> None:
    """Raise InputError unless ``poly`` is a non-empty closed (watertight, manifold) triangle surface."""
    if poly is None or poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        raise InputError(f"The {name} is empty: no triangles to render.")
    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(poly)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    n_open = edges.GetOutput().GetNumberOfLines()
    if n_open:
        raise InputError(f"The {name} is not closed: {n_open} boundary or non-manifold edge(s); "
                         "fill holes or use a closed segmentation surface.")


# ------------------------------------------------------------------------------------- volumes
class VolumeSampler:
    """Values of a [k, j, i] volume at RAS points (nearest or trilinear)."""

    def __init__(self, array_kji: np.ndarray, ijk_to_ras: np.ndarray, outside: float = 0.0):
        self.array = np.asarray(array_kji)
        self.ijk_to_ras = np.asarray(ijk_to_ras, float)
        self.ras_to_ijk = np.linalg.inv(self.ijk_to_ras)
        self.outside = outside

    def __call__(self, points_ras: np.ndarray, order: int = 0) -> np.ndarray:
        from scipy.ndimage import map_coordinates

        p = np.atleast_2d(np.asarray(points_ras, float))
        ijk = p @ self.ras_to_ijk[:3, :3].T + self.ras_to_ijk[:3, 3]
        return map_coordinates(self.array, ijk[:, ::-1].T, order=order, mode="constant", cval=self.outside)


def _image_from_array(array_kji: np.ndarray) -> vtk.vtkImageData:
    image = vtk.vtkImageData()
    k, j, i = array_kji.shape
    image.SetDimensions(i, j, k)
    data = ns.numpy_to_vtk(np.ascontiguousarray(array_kji, dtype=np.float32).ravel(), deep=True)
    image.GetPointData().SetScalars(data)
    return image


def _isosurface_ras(field_kji: np.ndarray, level: float, ijk_to_ras: np.ndarray, smooth: bool,
                    offset_ijk: Sequence[float] = (0, 0, 0), smoothing_iterations: int = 15) -> vtk.vtkPolyData:
    """Isosurface of a float volume (already padded so it closes), points mapped to RAS, with normals."""
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(_image_from_array(field_kji))
    fe.SetValue(0, level)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    poly = fe.GetOutput()
    if smooth and poly.GetNumberOfPoints():
        sinc = vtk.vtkWindowedSincPolyDataFilter()
        sinc.SetInputData(poly)
        sinc.SetNumberOfIterations(smoothing_iterations)
        sinc.SetPassBand(0.05)
        sinc.BoundarySmoothingOff()
        sinc.FeatureEdgeSmoothingOff()
        sinc.NonManifoldSmoothingOn()
        sinc.NormalizeCoordinatesOn()
        sinc.Update()
        poly = sinc.GetOutput()
    m = np.asarray(ijk_to_ras, float) @ np.block([[np.eye(3), np.asarray(offset_ijk, float)[:, None]],
                                                   [np.zeros((1, 3)), np.ones((1, 1))]])
    out = vtk.vtkPolyData()
    out.DeepCopy(poly)
    if out.GetNumberOfPoints():
        pts = polydata_points(out) @ m[:3, :3].T + m[:3, 3]
        out.GetPoints().SetData(ns.numpy_to_vtk(pts, deep=True))
    return out


def _with_normals(poly: vtk.vtkPolyData) -> vtk.vtkPolyData:
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.ConsistencyOn()
    normals.SplittingOff()  # splitting would open the surface at sharp edges
    normals.AutoOrientNormalsOff()
    normals.ComputePointNormalsOn()
    normals.ComputeCellNormalsOff()
    normals.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(normals.GetOutput())
    return out


def _flip(poly: vtk.vtkPolyData) -> vtk.vtkPolyData:
    rev = vtk.vtkReverseSense()
    rev.SetInputData(poly)
    rev.ReverseCellsOn()
    rev.ReverseNormalsOn()
    rev.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(rev.GetOutput())
    return out


def orient_normals_out_of_tissue(poly: vtk.vtkPolyData, is_tissue: Callable[[np.ndarray], np.ndarray],
                                 step_mm: float = 0.7, samples: int = 400, seed: int = 0) -> vtk.vtkPolyData:
    """Flip the whole surface's normals if most of them point into tissue."""
    poly = _with_normals(poly)
    pts, nrm = polydata_points(poly), polydata_normals(poly)
    if len(pts) == 0:
        return poly
    idx = np.random.default_rng(seed).choice(len(pts), size=min(samples, len(pts)), replace=False)
    ahead = np.asarray(is_tissue(pts[idx] + step_mm * nrm[idx]), bool)
    behind = np.asarray(is_tissue(pts[idx] - step_mm * nrm[idx]), bool)
    return _flip(poly) if (ahead & ~behind).sum() > (behind & ~ahead).sum() else poly


def surface_from_labels(label_array_kji: np.ndarray, ijk_to_ras: np.ndarray, values: int | Sequence[int],
                        smooth: bool = True) -> vtk.vtkPolyData:
    """Closed RAS surface (normals pointing outward) of the voxels whose label is in ``values``."""
    labels = np.asarray(label_array_kji)
    if labels.ndim != 3:
        raise InputError(f"Label volume must be 3D, got shape {labels.shape}.")
    values = [int(values)] if np.isscalar(values) else [int(v) for v in values]
    mask = np.isin(labels, values)
    if not mask.any():
        raise InputError(f"Label value(s) {values} are absent from the label volume: empty surface.")
    field_kji = np.pad(mask.astype(np.float32), 2)
    if smooth:
        from scipy.ndimage import gaussian_filter

        field_kji = gaussian_filter(field_kji, 0.6)
    poly = _isosurface_ras(field_kji, 0.5, ijk_to_ras, smooth, offset_ijk=(-2, -2, -2))
    check_closed_surface(poly, f"surface of label(s) {values}")
    sampler = VolumeSampler(mask.astype(np.uint8), ijk_to_ras)
    return orient_normals_out_of_tissue(poly, lambda p: sampler(p, 0) > 0)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import label

    lab, n = label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def cavity_surface(ct_array_kji: np.ndarray, ijk_to_ras: np.ndarray, threshold_hu: float = -400.0,
                   body_mask: bool = True, smooth: bool = True, roi_kji: Sequence[slice] | None = None,
                   ) -> tuple[vtk.vtkPolyData, Callable[[np.ndarray], np.ndarray]]:
    """Air/tissue boundary of a CT (closed, RAS, normals pointing into the air) and its tissue test.

    ``body_mask`` keeps only the largest connected tissue component, which drops the couch and head
    holder. ``roi_kji`` (three slices) crops the CT first. Returns ``(surface, is_tissue)`` where
    ``is_tissue(points_ras) -> bool array``.
    """
    ct = np.asarray(ct_array_kji, dtype=np.float32)
    if ct.ndim != 3:
        raise InputError(f"CT must be a 3D array, got shape {ct.shape}.")
    m = np.asarray(ijk_to_ras, float)
    if roi_kji is not None:
        starts = [s.start or 0 for s in roi_kji]
        ct = ct[tuple(roi_kji)]
        m = m.copy()
        m[:3, 3] = m[:3, 3] + m[:3, :3] @ np.array(starts[::-1], float)
    tissue = ct > threshold_hu
    if body_mask:
        tissue = _largest_component(tissue)
    if not tissue.any():
        raise InputError(f"No voxel above {threshold_hu} HU: empty surface.")
    air = -1000.0
    field_kji = np.where(tissue | (ct <= threshold_hu), ct, air)
    field_kji = np.where(tissue, np.maximum(field_kji, threshold_hu + 1), np.minimum(field_kji, threshold_hu - 1))
    field_kji = np.pad(np.clip(field_kji, air, 600.0), 2, constant_values=air)
    if smooth:
        from scipy.ndimage import gaussian_filter

        field_kji = gaussian_filter(field_kji, 0.7)
    poly = _isosurface_ras(field_kji, threshold_hu, m, smooth, offset_ijk=(-2, -2, -2))
    check_closed_surface(poly, "air/tissue surface")
    sampler = VolumeSampler(field_kji, m @ _translate(-2.0), outside=air)

    def is_tissue(points):
        return sampler(points, 1) > threshold_hu

    return orient_normals_out_of_tissue(poly, is_tissue), is_tissue


def _translate(d: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = d
    return t


# ------------------------------------------------------------------------------------ scenario
@dataclass
class Structure:
    name: str
    polydata: vtk.vtkPolyData
    look: TissueLook = field(default_factory=TissueLook)


@dataclass
class CameraStrategy:
    """How camera_paths places the endoscope.

    The camera stands off a random surface point along its normal at ``distance_mm`` and looks back
    at it (with jitter). ``prefer_direction`` (RAS) with ``min_alignment`` restricts the surface
    points, e.g. to organ faces turned towards the anterior abdominal wall for laparoscopy.
    """

    distance_mm: tuple[float, float] = (30.0, 90.0)
    look_jitter_deg: float = 20.0
    prefer_direction: tuple[float, float, float] | None = None
    min_alignment: float = 0.3
    min_valid_fraction: float = 0.5
    min_median_depth_mm: float = 8.0
    step_mm: float = 6.0  # typical motion between trajectory keyframes
    enclosed_mm: float | None = None  # cavities: most rays from the camera must hit a wall this close


@dataclass
class Scenario:
    name: str
    structures: list[Structure]
    strategy: CameraStrategy = field(default_factory=CameraStrategy)
    is_tissue: Callable[[np.ndarray], np.ndarray] | None = None
    description: str = ""

    def __post_init__(self):
        if not self.structures:
            raise InputError(f"Scenario '{self.name}' has no surfaces.")
        for s in self.structures:
            check_closed_surface(s.polydata, f"surface '{s.name}'")
            if s.polydata.GetPointData().GetNormals() is None:
                s.polydata = _with_normals(s.polydata)
        if self.is_tissue is None:
            self.is_tissue = _enclosed_test([s.polydata for s in self.structures])

    @classmethod
    def from_polydata(cls, poly: vtk.vtkPolyData, name: str = "surface", look: TissueLook | None = None,
                      strategy: CameraStrategy | None = None) -> Scenario:
        check_closed_surface(poly, name)
        return cls(name, [Structure(name, _with_normals(poly), look or TissueLook())], strategy or CameraStrategy())

    def inside_tissue(self, point_ras: Sequence[float]) -> bool:
        return bool(np.asarray(self.is_tissue(np.asarray(point_ras, float).reshape(1, 3)))[0])

    @property
    def bounds(self) -> np.ndarray:
        b = np.array([s.polydata.GetBounds() for s in self.structures])
        return np.array([b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(), b[:, 4].min(), b[:, 5].max()])


def _enclosed_test(polys: list[vtk.vtkPolyData]) -> Callable[[np.ndarray], np.ndarray]:
    """Inside test by ray parity over closed surfaces: inside an odd number of them means tissue."""
    testers = []
    for poly in polys:
        sel = vtk.vtkSelectEnclosedPoints()
        sel.SetTolerance(1e-6)
        sel.Initialize(poly)
        testers.append(sel)

    def is_tissue(points):
        pts = np.atleast_2d(np.asarray(points, float))
        return np.array([sum(t.IsInsideSurface(*p) for t in testers) % 2 == 1 for p in pts], bool)

    return is_tissue


# -------------------------------------------------------------------------------------- loaders
LAPAROSCOPY_ORGANS = {"liver": [5], "stomach": [6], "spleen": [1], "gallbladder": [4], "small_bowel": [18],
                      "duodenum": [19], "colon": [20], "kidney_right": [2], "kidney_left": [3], "pancreas": [7]}


def _read_ct(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from SurgicalAICore.geometry import array_from_sitk
    from SurgicalAICore.image_io import read_image

    if not path.is_file():
        raise InputError(f"CT file {path} not found (development data lives in ../shared/data).")
    image = read_image(path)  # an unreadable file is one InputError, not a SimpleITK traceback
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"CT file {path} is not a 3-D scalar volume.")
    return array_from_sitk(image)


def _laparoscopy(data_dir: Path | None) -> Scenario:
    from SurgicalAICore.resources import sample_data_dir

    folder = Path(data_dir) if data_dir else sample_data_dir() / "TotalSegmentatorExample"
    labels, m = _read_ct(folder / "example_seg_fast_force_split.nii.gz")
    names = json.loads((folder / "total_class_map.json").read_text())
    ids = {v: int(k) for k, v in names.items()}
    structures, masks = [], []
    for organ, default_ids in LAPAROSCOPY_ORGANS.items():
        values = [ids.get(organ, default_ids[0])]
        if not np.isin(labels, values).any():
            continue
        structures.append(Structure(organ, surface_from_labels(labels, m, values), look_for(organ)))
        masks.extend(values)
    sampler = VolumeSampler(np.isin(labels, masks).astype(np.uint8), m)
    strategy = CameraStrategy(distance_mm=(40.0, 110.0), prefer_direction=(0.0, 1.0, 0.0), min_alignment=0.2,
                              look_jitter_deg=15.0, min_median_depth_mm=20.0, step_mm=10.0)
    return Scenario("laparoscopy", structures, strategy, lambda p: sampler(p, 0) > 0,
                    "Abdominal organs of the bundled TotalSegmentator example CT (3 mm), seen from the anterior side.")


def _sinus(data_dir: Path | None) -> Scenario:
    from SurgicalAICore.resources import shared_data_dir

    root = Path(data_dir) if data_dir else shared_data_dir()
    ct, m = _read_ct(root / "ct" / "head_phantom" / "head_phantom_ct.nii.gz")
    # nasal cavity and paranasal sinuses: around the nose tip (slice ~94, row ~122, column ~257)
    roi = (slice(40, 175), slice(115, 275), slice(170, 345))
    surface, is_tissue = cavity_surface(ct, m, -400.0, roi_kji=roi)
    strategy = CameraStrategy(distance_mm=(6.0, 30.0), look_jitter_deg=25.0, min_median_depth_mm=4.0, step_mm=3.0,
                              enclosed_mm=45.0)
    return Scenario("sinus", [Structure("nasal_mucosa", surface, look_for("mucosa"))], strategy, is_tissue,
                    "Nasal cavity and sinuses of the head phantom CT (development data, not shipped).")


def airway_lumen_mask(ct: np.ndarray, threshold_hu: float = -900.0, max_fraction: float = 0.01) -> np.ndarray:
    """Trachea-connected airway lumen by region growing from the upper-most central air blob."""
    from scipy.ndimage import binary_opening, label

    air = ct < threshold_hu
    top = None
    for k in range(ct.shape[0] - 1, -1, -1):  # superior end first (k grows superiorly in RAS/LPS volumes)
        lab, n = label(air[k])
        if n == 0:
            continue
        c = np.array(ct.shape[1:]) / 2
        best = None
        for idx in range(1, n + 1):
            ys, xs = np.nonzero(lab == idx)
            if 30 <= len(ys) <= 1500 and np.hypot(ys.mean() - c[0], xs.mean() - c[1]) < ct.shape[1] * 0.2:
                best = (ys[0], xs[0])
                break
        if best is not None:
            top = (k, *best)
            break
    if top is None:
        raise InputError("Cannot find the trachea in the chest CT.")
    air = binary_opening(air)
    lab, _ = label(air)
    lumen = lab == lab[top]
    if lumen.sum() > max_fraction * lumen.size:
        raise InputError("Airway region growing leaked into the lungs; try a lower threshold.")
    return lumen


def _bronchoscopy(data_dir: Path | None) -> Scenario:
    from SurgicalAICore.resources import shared_data_dir

    root = Path(data_dir) if data_dir else shared_data_dir()
    ct, m = _read_ct(root / "ct" / "lidc_chest" / "LIDC-IDRI-0314_ct.nii.gz")
    lumen = airway_lumen_mask(ct)
    # The lumen is air: its surface normals must point inwards (into the air) to face the camera.
    surface = surface_from_labels(lumen.astype(np.uint8), m, 1)
    surface = _flip(surface)
    sampler = VolumeSampler(lumen.astype(np.uint8), m)
    strategy = CameraStrategy(distance_mm=(3.0, 12.0), look_jitter_deg=30.0, min_median_depth_mm=4.0, step_mm=3.0,
                              enclosed_mm=60.0)
    return Scenario("bronchoscopy", [Structure("airway", surface, look_for("airway"))], strategy,
                    lambda p: sampler(p, 0) == 0, "Airway lumen of the LIDC-IDRI-0314 chest CT (1 mm).")


def shapes_scenario(seed: int = 0, n_blobs: int = 14, radius_mm: float = 70.0) -> Scenario:
    """Procedural cavity: bumpy ellipsoid 'organs' inside a closed spherical chamber (no CT needed)."""
    from SurgicalDepthLib.synthetic.textures import LOOKS, ValueNoise3D

    rng = np.random.default_rng(seed)
    noise = ValueNoise3D(seed + 7)

    def bumpy(poly, amplitude, scale):
        pts, nrm = polydata_points(poly), polydata_normals(poly)
        pts = pts + nrm * (amplitude * (noise.fbm(pts / scale, 2) - 0.5))[:, None]
        out = vtk.vtkPolyData()
        out.DeepCopy(poly)
        out.GetPoints().SetData(ns.numpy_to_vtk(pts, deep=True))
        return _with_normals(out)

    def ellipsoid(centre, axes, rotation, resolution=80):
        src = vtk.vtkSphereSource()
        src.SetRadius(1.0)
        src.SetThetaResolution(resolution)
        src.SetPhiResolution(resolution)
        src.Update()
        m = np.eye(4)
        m[:3, :3] = rotation @ np.diag(axes)
        m[:3, 3] = centre
        tf = vtk.vtkTransform()
        tf.SetMatrix(m.ravel().tolist())
        f = vtk.vtkTransformPolyDataFilter()
        f.SetInputConnection(src.GetOutputPort())
        f.SetTransform(tf)
        f.Update()
        return _with_normals(f.GetOutput())

    looks = [v for k, v in LOOKS.items() if k != "default"]
    chamber = _flip(bumpy(ellipsoid(np.zeros(3), (radius_mm,) * 3, np.eye(3), 120), 12.0, 25.0))
    structures = [Structure("chamber", chamber, looks[rng.integers(len(looks))])]
    blobs = []
    for b in range(n_blobs):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        axes = rng.uniform(8.0, 25.0, 3)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.linalg.det(q))
        centre = direction * (radius_mm - axes.min() * 0.6)
        blobs.append((centre, axes, q))
        structures.append(Structure(f"blob_{b}", bumpy(ellipsoid(centre, axes, q), 3.0, 8.0),
                                    looks[rng.integers(len(looks))]))

    def is_tissue(points):
        p = np.atleast_2d(np.asarray(points, float))
        inside = np.linalg.norm(p, axis=1) > radius_mm - 8.0
        for centre, axes, q in blobs:
            local = (p - centre) @ q / axes
            inside |= np.sum(local ** 2, axis=1) <= 1.2
        return inside

    strategy = CameraStrategy(distance_mm=(10.0, 60.0), look_jitter_deg=25.0, min_median_depth_mm=6.0, step_mm=6.0)
    return Scenario("shapes", structures, strategy, is_tissue, "Procedural bumpy shapes in a closed chamber.")


def ct_cavity_scenario(ct_path: str | Path, threshold_hu: float = -400.0) -> Scenario:
    """Endoscopy of the air cavities (airway, sinuses, bowel gas) of any CT file, inside its body mask."""
    ct, m = _read_ct(Path(ct_path))
    surface, is_tissue = cavity_surface(ct, m, threshold_hu)
    strategy = CameraStrategy(distance_mm=(5.0, 30.0), look_jitter_deg=25.0, min_median_depth_mm=4.0, step_mm=3.0,
                              enclosed_mm=45.0)
    return Scenario(f"ct:{Path(ct_path).name}", [Structure("mucosa", surface, look_for("mucosa"))], strategy,
                    is_tissue, f"Air cavities of {Path(ct_path).name}.")


