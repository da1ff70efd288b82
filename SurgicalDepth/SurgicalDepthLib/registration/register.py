"""Register a camera-frame point cloud to a CT target: start pose, ICP, quality; optionally onto a node.

This is the one caller of :func:`icp`: the panel's session, the CLI and the frame tracker all register
through :func:`register_cloud`, so a new refiner or quality rule has one place to go.

The camera-to-CT transform node (the one the point cloud model hangs under) is changed only when
the registration ran to the end; on any error it keeps its matrix. The fit statistics are kept on
the node as attributes so the panel and a saved scene show them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.mrml.transforms import get_matrix, set_matrix
from SurgicalAICore.progress import CancelToken, Progress
from SurgicalDepthLib.registration.icp import ICPResult, check_cloud, icp
from SurgicalDepthLib.registration.initial_pose import PoseInputs, initial_pose
from SurgicalDepthLib.registration.quality import RegistrationQuality, assess
from SurgicalDepthLib.registration.target import RegistrationTarget

ATTRIBUTE_PREFIX = "SurgicalAI.Registration."
_INPUT_FIELDS = {f.name for f in fields(PoseInputs)}


def _check_transform_node(node):
    if node is None or not node.IsA("vtkMRMLLinearTransformNode"):
        raise InputError("Registration needs a linear transform node (camera to CT) to write its result to.")
    return node


@dataclass
class RegistrationResult:
    matrix: np.ndarray            # camera-to-CT (RAS) 4x4
    initial: np.ndarray
    quality: RegistrationQuality
    icp: ICPResult
    method: str


def pose_inputs(**kwargs) -> PoseInputs:
    """:class:`PoseInputs` from keyword arguments, refusing unknown ones by name."""
    unknown = sorted(set(kwargs) - _INPUT_FIELDS)
    if unknown:
        raise InputError(f"Unknown registration option(s): {', '.join(unknown)}.")
    return PoseInputs(**kwargs)


def register_cloud(cloud: np.ndarray, target: RegistrationTarget, transform_node=None, *, method: str = "current",
                   scale: bool = False, max_rms_mm: float = 1.5, min_inlier_fraction: float = 0.3,
                   device: str | None = "cpu", icp_options: dict[str, Any] | None = None,
                   progress=None, cancel: CancelToken | None = None, **init_kwargs) -> RegistrationResult:
    """Register a camera-frame ``cloud`` (N, 3, mm) to ``target``.

    Args:
        method: a key of ``INITIALISERS`` (current, tracking, landmarks, global, global-full).
        transform_node: if given, its matrix is the ``current`` pose (unless one is passed) and it
            receives the result, with the quality as attributes, only when the registration finished.
        icp_options: extra :func:`icp` options (iterations, gate, subsampling, seed).
        init_kwargs: fields of :class:`PoseInputs` (current, landmarks_cloud, budget_s, ...).

    Raises:
        InputError: no target, a bad cloud, an unknown method or option, a missing input of the method.
    """
    prog = Progress.of(progress, cancel)
    if transform_node is not None:
        _check_transform_node(transform_node)
        init_kwargs.setdefault("current", get_matrix(transform_node))
    if target is None:
        raise InputError("No registration target (CT surface) was given.")
    pts = check_cloud(cloud)
    inputs = pose_inputs(scale=scale, device=device, cancel=cancel, **init_kwargs)
    prog.step(0.0, "initialising")
    init = initial_pose(pts, target, method, inputs)
    prog.step(0.4, "refining (ICP)")
    result = icp(pts, target, init, scale=scale, device=device, **(icp_options or {}))
    quality = assess(result, max_rms_mm=max_rms_mm, min_inlier_fraction=min_inlier_fraction)
    prog.step(0.95, "updating the scene")
    if transform_node is not None:
        set_matrix(transform_node, result.matrix)
        for key, value in asdict(quality).items():
            transform_node.SetAttribute(ATTRIBUTE_PREFIX + key, str(value))
    prog.step(1.0, "registered" if quality.trusted else f"registered, not trusted: {quality.reason}")
    return RegistrationResult(result.matrix, init, quality, result, method)


def cloud_points_from_model_node(model_node) -> np.ndarray:
    """Camera-frame points (N, 3) of a point-cloud model node (its own coordinates, not world)."""
    from vtk.util import numpy_support

    if model_node is None or model_node.GetPolyData() is None or model_node.GetPolyData().GetPoints() is None:
        raise InputError("No point cloud yet: run depth on a frame first.")
    return numpy_support.vtk_to_numpy(model_node.GetPolyData().GetPoints().GetData()).astype(np.float64)
