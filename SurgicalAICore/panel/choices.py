"""Choices offered by the panels and the command line, defined once."""
from __future__ import annotations

import enum


class Device(str, enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class Modality(str, enum.Enum):
    CT = "CT"
    MR = "MR"


class ModelChoice(str, enum.Enum):
    BUNDLED = "bundled"  # the model shipped in Resources/Models
    FOLDER = "folder"  # a model folder chosen by the user


def values(enum_class: type[enum.Enum]) -> list[str]:
    """The command-line spelling of each choice (argparse ``choices=``)."""
    return [member.value for member in enum_class]
