"""Where the extension's bundled resources (models, sample data) are.

Looked up as ``$SURGICALAI_RESOURCES`` if set, else the ``Resources`` folder of the source tree or
installed extension that holds this package.
"""
from __future__ import annotations

import os
from pathlib import Path

from SurgicalAICore.errors import InputError


def resources_dir() -> Path:
    env = os.environ.get("SURGICALAI_RESOURCES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "Resources"
        if (candidate / "Models").is_dir() or (candidate / "SampleData").is_dir():
            return candidate
    raise InputError("Cannot find the extension's Resources folder; set SURGICALAI_RESOURCES.")


def models_dir() -> Path:
    return resources_dir() / "Models"


def sample_data_dir() -> Path:
    return resources_dir() / "SampleData"


def sample_ct_path() -> Path:
    """The bundled abdominal CT (TotalSegmentator example, CC BY 4.0; see its ATTRIBUTION.md)."""
    return sample_data_dir() / "TotalSegmentatorExample" / "example_ct.nii.gz"


def shared_data_dir() -> Path:
    """``../shared/data`` beside the source checkout (development data; may be absent)."""
    env = os.environ.get("SURGICALAI_SHARED_DATA")
    if env:
        return Path(env)
    return resources_dir().parent.parent / "shared" / "data"
