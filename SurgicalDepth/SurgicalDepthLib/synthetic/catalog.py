"""Scenarios by name: the built-in ones, the air cavities of any CT (ct:PATH) and a limb CT's surface (limb:PATH)."""
from __future__ import annotations

from pathlib import Path

from SurgicalAICore.errors import InputError
from SurgicalDepthLib.synthetic.limb import limb_surface_scenario
from SurgicalDepthLib.synthetic.scenarios import (
    SCENARIOS,
    Scenario,
    _bronchoscopy,
    _laparoscopy,
    _sinus,
    ct_cavity_scenario,
    shapes_scenario,
)


def load_scenario(name: str, data_dir: str | Path | None = None) -> Scenario:
    """Build one of :data:`SCENARIOS` (``data_dir``: the shared data root, or the sample-CT folder for
    laparoscopy), ``ct:PATH`` for the air cavities of any CT file, or ``limb:PATH`` for a limb CT's surface."""
    if name.startswith("ct:"):
        return ct_cavity_scenario(name[3:])
    if name.startswith("limb:"):
        return limb_surface_scenario(name[5:])
    loaders = {"laparoscopy": _laparoscopy, "sinus": _sinus, "bronchoscopy": _bronchoscopy,
               "shapes": lambda d: shapes_scenario()}
    if name not in loaders:
        raise InputError(f"Unknown scenario '{name}': choose one of {', '.join(SCENARIOS)}.")
    return loaders[name](Path(data_dir) if data_dir else None)
