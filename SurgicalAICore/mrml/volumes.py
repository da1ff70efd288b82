"""Volume node <-> numpy array + geometry, and SimpleITK image <-> volume node, on a given MRML scene."""

from __future__ import annotations


import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from SurgicalAICore.errors import InputError
from SurgicalAICore.geometry import array_from_sitk, decompose_ijk_to_ras, sitk_from_array
from SurgicalAICore.mrml.transforms import numpy_from_vtk_matrix, vtk_matrix_from_numpy


def image_data_from_array(array: np.ndarray) -> vtk.vtkImageData:
    """vtkImageData holding a copy of ``array`` ([k, j, i] or [k, j, i, components])."""
    if array.ndim not in (3, 4):
        raise InputError(f"Expected a 3-D volume (or 3-D with colour components), got an array of shape {array.shape}.")
    components = 1 if array.ndim == 3 else array.shape[3]
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    flat = (
        np.ascontiguousarray(array).reshape(-1, components) if components > 1 else np.ascontiguousarray(array).ravel()
    )
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def array_from_image_data(image: vtk.vtkImageData) -> np.ndarray:
    dims = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    if scalars is None:
        raise InputError("The volume has no voxel data.")
    flat = numpy_support.vtk_to_numpy(scalars)
    shape = (dims[2], dims[1], dims[0]) + (
        (scalars.GetNumberOfComponents(),) if scalars.GetNumberOfComponents() > 1 else ()
    )
    return flat.reshape(shape).copy()


def set_volume_geometry(node, ijk_to_ras: np.ndarray) -> None:
    decompose_ijk_to_ras(ijk_to_ras)  # validates
    node.SetIJKToRASMatrix(vtk_matrix_from_numpy(np.asarray(ijk_to_ras, float)))


def volume_ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return numpy_from_vtk_matrix(m)


def add_volume_node(
    scene,
    array: np.ndarray,
    ijk_to_ras: np.ndarray,
    name: str = "Volume",
    labelmap: bool = False,
    create_display: bool = True,
):
    """Add a scalar, label map or (for [k, j, i, c] arrays) vector volume node to ``scene``."""
    import slicer  # MRML node classes only (slicer-core); never the app

    array = np.asarray(array)
    decompose_ijk_to_ras(ijk_to_ras)
    if array.ndim == 4:
        node = slicer.vtkMRMLVectorVolumeNode()
    elif labelmap:
        node = slicer.vtkMRMLLabelMapVolumeNode()
    else:
        node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    node.SetAndObserveImageData(image_data_from_array(array))
    set_volume_geometry(node, ijk_to_ras)
    scene.AddNode(node)
    if create_display:
        node.CreateDefaultDisplayNodes()
    return node


def update_volume_node(node, array: np.ndarray, ijk_to_ras: np.ndarray | None = None) -> None:
    node.SetAndObserveImageData(image_data_from_array(np.asarray(array)))
    if ijk_to_ras is not None:
        set_volume_geometry(node, ijk_to_ras)
    node.Modified()


def array_and_geometry(node) -> tuple[np.ndarray, np.ndarray]:
    """(copy of the voxel array [k, j, i(, c)], IJK->RAS 4x4) of a volume node."""
    if node is None:
        raise InputError("No input volume was given.")
    image = node.GetImageData()
    if image is None:
        raise InputError(f"Volume '{node.GetName()}' has no voxel data.")
    return array_from_image_data(image), volume_ijk_to_ras(node)


def sitk_from_volume_node(node) -> sitk.Image:
    array, ijk_to_ras = array_and_geometry(node)
    return sitk_from_array(array, ijk_to_ras, is_vector=array.ndim == 4)


def add_volume_from_sitk(scene, image: sitk.Image, name: str = "Volume", labelmap: bool = False):
    array, ijk_to_ras = array_from_sitk(image)
    return add_volume_node(scene, array, ijk_to_ras, name=name, labelmap=labelmap)
