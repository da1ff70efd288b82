"""The bundled CT as a Sample Data entry: a local file with its SHA-256 (nothing is downloaded)."""
from __future__ import annotations

from collections.abc import Callable

from SurgicalAICore.resources import resources_dir, sample_ct_path

SAMPLE_CT_SHA256 = "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1"
SAMPLE_CT_NAME = "SurgicalAI abdomen CT"


def register_sample_data(register: Callable[..., object]) -> dict:
    """Call ``register`` (``SampleData.SampleDataLogic.registerCustomSampleDataSource``) for the bundled CT;
    returns the arguments given."""
    path = sample_ct_path()
    icon = resources_dir() / "Icons" / "SlicerSurgicalAI.png"
    arguments = {
        "category": "SlicerSurgicalAI", "sampleName": SAMPLE_CT_NAME, "uris": path.resolve().as_uri(),
        "fileNames": path.name, "nodeNames": SAMPLE_CT_NAME, "loadFileType": "VolumeFile",
        "checksums": f"SHA256:{SAMPLE_CT_SHA256}",
        "thumbnailFileName": str(icon) if icon.is_file() else None,
    }
    register(**arguments)
    return arguments
