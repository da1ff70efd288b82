"""Surface meshes as registration targets: every format, and each kind of bad mesh refused in one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import vtk

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.registration import shapes
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration.meshes import check_mesh, read_mesh, target_from_mesh
from SurgicalDepthLib.registration.target import transform_polydata

ROOT = Path(__file__).resolve().parents[1]
WRITERS = {".stl": vtk.vtkSTLWriter, ".ply": vtk.vtkPLYWriter, ".vtk": vtk.vtkPolyDataWriter,
           ".vtp": vtk.vtkXMLPolyDataWriter, ".obj": vtk.vtkOBJWriter}


def _write(poly, path: Path) -> Path:
    w = WRITERS[path.suffix]()
    w.SetFileName(str(path))
    w.SetInputData(poly)
    w.Write()
    return path


@pytest.fixture(scope="module")
def organ():
    return shapes.organ_polydata(resolution=40)


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_every_mesh_format_reads_as_the_same_closed_surface(organ, tmp_path, suffix):
    poly = read_mesh(_write(organ, tmp_path / f"organ{suffix}"))
    check_mesh(poly)  # closed and manifold after merging the corners STL/OBJ store per triangle
    assert poly.GetNumberOfPolys() == organ.GetNumberOfPolys()
    assert np.allclose(poly.GetBounds(), organ.GetBounds(), atol=1e-3)


def test_registers_a_cloud_to_a_mesh_target(organ):
    target = target_from_mesh(organ, "organ")
    view = shapes.visible_patch(shapes.surface_samples(organ, 1.0, seed=3), (1, 0.2, 0.1), 0.4)
    truth = shapes.perturbation(8, 5, view.mean(0), np.random.default_rng(1))
    from SurgicalDepthLib.registration.register import register_cloud

    result = register_cloud(shapes.apply(np.linalg.inv(truth), view), target, current=np.eye(4))
    assert max(pose_error(result.matrix, truth)[:2]) < 0.3


def _open(poly):
    clip = vtk.vtkClipPolyData()
    clip.SetInputData(poly)
    plane = vtk.vtkPlane()
    plane.SetNormal(1, 0, 0)
    clip.SetClipFunction(plane)
    clip.Update()
    return clip.GetOutput()


def _non_manifold(poly):
    # a fin: one extra triangle on an existing edge makes that edge shared by three triangles
    out = vtk.vtkPolyData()
    out.DeepCopy(poly)
    cell = out.GetCell(0)
    a, b = cell.GetPointId(0), cell.GetPointId(1)
    tip = out.GetPoints().InsertNextPoint(0.0, 0.0, 0.0)
    out.GetPolys().InsertNextCell(3, [a, b, tip])
    return out


@pytest.mark.parametrize("bad, message", [
    (lambda p: vtk.vtkPolyData(), "empty"),
    (_open, "open"),
    (_non_manifold, "non-manifold"),
    (lambda p: transform_polydata(p, np.diag([1e-3, 1e-3, 1e-3, 1.0])), "metres"),
])
def test_bad_meshes_are_one_clear_error(organ, bad, message):
    with pytest.raises(InputError, match=message):
        check_mesh(bad(organ))


def test_open_mesh_accepted_when_asked_and_cloud_units_compared(organ):
    check_mesh(_open(organ), allow_open=True)
    cloud_in_metres = shapes.surface_samples(organ, 2.0)[:500] / 1000.0
    with pytest.raises(InputError, match="Scale mismatch"):
        check_mesh(organ, cloud=cloud_in_metres)


def test_cli_refuses_a_metre_mesh_writing_nothing(organ, tmp_path):
    mesh = _write(transform_polydata(organ, np.diag([1e-3, 1e-3, 1e-3, 1.0])), tmp_path / "organ_m.stl")
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, shapes.surface_samples(organ, 2.0)[:2000])
    out = tmp_path / "out"
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'SegmentationAI'}:{ROOT / 'SurgicalDepth'}", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "surgicalai.cli", "register", str(cloud), "--mesh", str(mesh),
                          "-o", str(out)], check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "metres" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not out.exists()
    # the same mesh in mm registers, and the report carries the three-state trust
    _write(organ, tmp_path / "organ.stl")
    run = subprocess.run([sys.executable, "-m", "surgicalai.cli", "register", str(cloud), "--mesh",
                          str(tmp_path / "organ.stl"), "-o", str(out)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "registration.json").read_text())
    assert report["trust"] == "trusted" and report["rms_mm"] < 0.5
