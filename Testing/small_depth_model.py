"""The bundled depth weights with a smaller input size for tests: the network is fully convolutional, and
small frames keep adaptation runs to seconds."""
import json
import shutil
from pathlib import Path

from SurgicalDepthLib.depth.model import default_model_path


def small_bundled_model(folder: Path, input_size=(128, 160)) -> Path:
    shutil.copytree(default_model_path(), folder)
    card = json.loads((folder / "model.json").read_text())
    card["input_size"] = list(input_size)
    (folder / "model.json").write_text(json.dumps(card))
    return folder
