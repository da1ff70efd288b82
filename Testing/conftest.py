"""Shared pytest fixtures: a real MRML scene (slicer-core), sample and shared data locations."""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for sub in ("SegmentationAI", "SurgicalDepth", ""):
    path = str(ROOT / sub)
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

SHARED_DATA = Path(os.environ.get("SURGICALAI_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def scene():
    """A fresh real vtkMRMLScene with the module logics the extension uses."""
    from SurgicalAICore.mrml.scene import new_scene

    s = new_scene()
    yield s
    s.Clear(1)


@pytest.fixture(scope="session")
def sample_ct_path() -> Path:
    from SurgicalAICore.resources import sample_ct_path

    return sample_ct_path()


def shared_path(relative: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"development data {path} is absent (../shared/data is only beside a developer checkout)")
    return path


@pytest.fixture
def shared_data():
    return shared_path


def scene_snapshot(scene):
    """IDs and modification times of every node: equal before/after means the scene is unchanged."""
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return sorted((n.GetID(), n.GetClassName(), n.GetMTime()) for n in nodes)


@pytest.fixture
def snapshot():
    return scene_snapshot


def _dump_stacks_on_sigterm() -> None:
    # CI stops an over-long run with SIGTERM: print every thread's stack first, so the log says where it was
    faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)


_dump_stacks_on_sigterm()


@pytest.fixture(autouse=True)
def _no_leaked_signal_handlers():
    """Tests that run the console command in this process install its SIGTERM/SIGINT handlers; put pytest's
    own back afterwards so one test's handler never decides how the whole run ends."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in before.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
            if sig == signal.SIGTERM:
                _dump_stacks_on_sigterm()
