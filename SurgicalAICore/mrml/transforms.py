"""4x4 matrices between numpy and VTK/MRML, and the one ``transform_points``.

Every matrix read from or written to a transform node, volume or segmentation goes through here, so a
convention (row-major, homogeneous, parent-from-child) is written once.
"""
from __future__ import annotations

import numpy as np
import vtk

from SurgicalAICore.errors import InputError


def vtk_matrix_from_numpy(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(matrix[r, c]))
    return m


def numpy_from_vtk_matrix(m: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def get_matrix(transform_node) -> np.ndarray:
    """The node's matrix to its parent."""
    m = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToParent(m)
    return numpy_from_vtk_matrix(m)


def set_matrix(transform_node, matrix: np.ndarray) -> None:
    transform_node.SetMatrixTransformToParent(vtk_matrix_from_numpy(np.asarray(matrix, float)))


def transform_node_to_world(node) -> np.ndarray:
    """The 4x4 to-world matrix of a linear transform node (e.g. a tracked endoscope's)."""
    if node is None:
        raise InputError("No tracking transform was chosen.")
    if not node.IsTransformToWorldLinear():
        raise InputError(f"Transform '{node.GetName()}' is not linear; a tracked pose must be a linear transform.")
    m = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToWorld(m)
    return numpy_from_vtk_matrix(m)


def parent_to_world(node) -> np.ndarray | None:
    """To-world matrix of the transform a displayable node hangs under (None: it hangs under none)."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return None
    if not parent.IsTransformToWorldLinear():
        raise InputError(f"'{node.GetName()}' is under a non-linear transform; harden it first.")
    return transform_node_to_world(parent)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) points mapped by a 4x4 homogeneous matrix (rotation/scale part, then translation)."""
    m = np.asarray(matrix, float)
    return np.asarray(points, float) @ m[:3, :3].T + m[:3, 3]
