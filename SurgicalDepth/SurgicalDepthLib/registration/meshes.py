"""Surface meshes as registration targets (.stl, .ply, .vtk, .vtp, .obj files or a model node), checked first.

A mesh is refused with one clear line when it is empty, has non-finite points, is non-manifold (an edge shared
by more than two triangles: the closest-point normals are then ambiguous), is open (unless the caller accepts
a partial surface), or is in other units: anatomy in mm spans centimetres to decimetres, so a mesh whose extent
is under a few mm was almost certainly saved in metres (1000x too small), and one far larger than the depth
cloud it is registered to is in other units too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import vtk
from vtk.util import numpy_support

from SurgicalAICore.errors import InputError
from SurgicalAICore.library_output import vtk_messages

MESH_READERS = {".stl": "vtkSTLReader", ".ply": "vtkPLYReader", ".vtk": "vtkPolyDataReader",
                ".vtp": "vtkXMLPolyDataReader", ".obj": "vtkOBJReader"}
MIN_EXTENT_MM = 5.0        # below: metres (or cm) taken for mm
MAX_EXTENT_MM = 3000.0     # above: micrometres, or a scene in other units
MAX_CLOUD_RATIO = 30.0     # mesh extent / cloud extent beyond which the two are in different units


def read_mesh(path: str | Path) -> vtk.vtkPolyData:
    """The polydata of a mesh file; a missing, unreadable or unknown file is an InputError."""
    p = Path(path)
    reader_name = MESH_READERS.get(p.suffix.lower())
    if reader_name is None:
        raise InputError(f"Unknown mesh format '{p.suffix}': use {', '.join(MESH_READERS)}.")
    if not p.is_file():
        raise InputError(f"Mesh file not found: {p}")
    reader = getattr(vtk, reader_name)()
    reader.SetFileName(str(p))
    # formats that store each triangle's corners separately (STL, OBJ with normals) would look open:
    # merge coincident points first
    clean = vtk.vtkCleanPolyData()
    clean.SetInputConnection(reader.GetOutputPort())
    clean.PointMergingOn()
    clean.SetTolerance(0.0)
    with vtk_messages() as printed:  # VTK's readers print a screenful about a bad file before our one line
        clean.Update()
    poly = vtk.vtkPolyData()
    poly.DeepCopy(clean.GetOutput())
    if poly.GetNumberOfPoints() == 0:
        raise InputError(f"Mesh {p.name} is empty or unreadable: no points{printed.reason()}.")
    return poly


def _edge_counts(poly: vtk.vtkPolyData) -> tuple[int, int]:
    """(boundary edges, non-manifold edges) of the mesh's triangles."""
    from SurgicalDepthLib.registration.target import mesh_arrays

    _, tris = mesh_arrays(poly)
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts == 1).sum()), int((counts > 2).sum())


def check_mesh(poly: vtk.vtkPolyData, name: str = "mesh", *, allow_open: bool = False,
               cloud: np.ndarray | None = None) -> vtk.vtkPolyData:
    """``poly`` if it is a usable registration surface in mm, else one InputError saying what is wrong."""
    if poly is None or poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        raise InputError(f"The {name} is empty: no triangles to register to.")
    pts = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    if not np.all(np.isfinite(pts)):
        raise InputError(f"The {name} has non-finite (NaN/inf) vertex coordinates.")
    boundary, non_manifold = _edge_counts(poly)
    if non_manifold:
        raise InputError(f"The {name} is non-manifold: {non_manifold} edges are shared by more than two "
                         "triangles; clean it (e.g. remesh) first.")
    if boundary and not allow_open:
        raise InputError(f"The {name} is open ({boundary} boundary edges); a closed surface is expected "
                         "(accept a partial surface explicitly if that is what it is).")
    extent = float(np.linalg.norm(pts.max(0) - pts.min(0)))
    if extent < MIN_EXTENT_MM:
        raise InputError(f"The {name} spans only {extent:.3g} units: it looks like metres, not mm "
                         f"({1000 * extent:.0f} mm if metres); rescale it by 1000.")
    if extent > MAX_EXTENT_MM:
        raise InputError(f"The {name} spans {extent:.3g} units, larger than any anatomy in mm: check its units.")
    if cloud is not None:
        c = np.asarray(cloud, float)
        c = c[np.all(np.isfinite(c), axis=1)]
        cloud_extent = float(np.linalg.norm(c.max(0) - c.min(0))) if len(c) else 0.0
        ratio = extent / max(cloud_extent, 1e-9)
        if not 1 / MAX_CLOUD_RATIO <= ratio <= MAX_CLOUD_RATIO:
            raise InputError(f"Scale mismatch: the {name} spans {extent:.3g} units but the point cloud "
                             f"{cloud_extent:.3g} mm ({ratio:.3g}x); are both in mm?")
    return poly


def model_node_polydata(model_node) -> vtk.vtkPolyData:
    """A model node's surface in world (RAS) coordinates, any linear parent transform applied."""
    from SurgicalAICore.mrml.transforms import parent_to_world
    from SurgicalDepthLib.registration.target import transform_polydata

    if model_node is None or not model_node.IsA("vtkMRMLModelNode") or model_node.GetPolyData() is None:
        raise InputError("Choose a model node with a surface as the registration target.")
    poly = model_node.GetPolyData()
    to_world = parent_to_world(model_node)
    return transform_polydata(poly, to_world) if to_world is not None else poly


def target_from_mesh(poly: vtk.vtkPolyData, name: str = "mesh", *, allow_open: bool = False,
                     cloud: np.ndarray | None = None):
    """A :class:`RegistrationTarget` from a checked surface mesh (RAS, mm)."""
    from SurgicalDepthLib.registration.target import target_from_polydata

    check_mesh(poly, name, allow_open=allow_open, cloud=cloud)
    return target_from_polydata(poly, name=name, segments={name: poly})
