"""High-level segmentation of images: preprocessing, network, post-processing, back to the input grid.

``segment_image`` is the one path used by the CLI, the scene (``segment_volume_node``), the demo
and the evaluation of trained models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from SurgicalAICore.errors import InputError
from SegmentationAILib.inference import predict_probabilities
from SegmentationAILib.postprocessing import labels_from_probabilities, postprocess
from SegmentationAILib.preprocessing import prepare_input, resample_like, resolve_options
from SurgicalAICore.progress import CancelToken, Progress, ProgressCallback
from SegmentationAILib.seg_model import SegmentationModel, label_names, load_segmentation_model

ModelsArg = str | Path | SegmentationModel | Sequence[str | Path | SegmentationModel] | None


@dataclass
class SegmentationOptions:
    """User choices; ``None`` means "as the model card says"."""

    device: str = "auto"
    tta: bool | None = None
    clahe: bool | None = None
    denoise: bool | None = None
    overlap: float | None = None
    largest_component: bool | list[str] | None = None
    fill_holes: bool | None = None

    @staticmethod
    def of(options: None | SegmentationOptions | Mapping[str, Any]) -> SegmentationOptions:
        if options is None:
            return SegmentationOptions()
        if isinstance(options, SegmentationOptions):
            return options
        known = set(SegmentationOptions.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(
                f"Unknown segmentation option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})."
            )
        return SegmentationOptions(**dict(options))


def resolve_models(models: ModelsArg, device: str = "auto") -> list[SegmentationModel]:
    """Loaded models from ``None`` (bundled default), a folder, a model, or a list of those."""
    if models is None or isinstance(models, (str, Path, SegmentationModel)):
        models = [models]
    loaded = [m if isinstance(m, SegmentationModel) else load_segmentation_model(m, device=device) for m in models]
    if not loaded:
        raise InputError("No model was given.")
    first = [(e["value"], e["name"]) for e in loaded[0].labels]
    for m in loaded[1:]:
        if [(e["value"], e["name"]) for e in m.labels] != first:
            raise InputError("The models of an ensemble must have the same labels.")
    return loaded


def segment_image(
    image: sitk.Image | list[sitk.Image],
    models: ModelsArg = None,
    options: None | SegmentationOptions | Mapping[str, Any] = None,
    progress: ProgressCallback | Progress | None = None,
    cancel: CancelToken | None = None,
    notify: Callable[[str], None] | None = None,
) -> sitk.Image:
    """Label map (UInt8 SimpleITK image on the input grid; 0 background, values as the card's labels)."""
    opts = SegmentationOptions.of(options)
    prog = Progress.of(progress, cancel)
    prog.step(0.0, "loading the model")
    loaded = resolve_models(models, opts.device)
    card = loaded[0].card
    channels = list(image) if isinstance(image, (list, tuple)) else [image]
    if not channels:
        raise InputError("No input image was given.")
    settings = resolve_options(card, {k: v for k, v in asdict(opts).items() if k != "device"})
    prog.step(0.05, "preprocessing")
    array, grid = prepare_input(channels, card, clahe=settings["clahe"], denoise=settings["denoise"])
    probs = predict_probabilities(
        loaded,
        array,
        tta=settings["tta"],
        progress=prog.sub(0.1, 0.9),
        overlap=settings["overlap"],
        blend=settings["blend"],
        tta_axes=settings["tta_axes"],
        notify=notify,
    )
    prog.step(0.9, "post-processing")
    labels = labels_from_probabilities(probs)
    del probs
    labels = postprocess(labels, label_names(card), settings["largest_component"], settings["fill_holes"])
    label_image = sitk.GetImageFromArray(labels.astype(np.uint8))
    label_image.CopyInformation(grid)
    prog.step(0.95, "resampling to the input grid")
    out = resample_like(label_image, channels[0], sitk.sitkNearestNeighbor, 0)
    prog.step(1.0, "segmentation done")
    return out


def segment_file(
    path: str | Path, models: ModelsArg = None, options=None, progress=None, cancel=None, notify=None
) -> sitk.Image:
    """Segment an image file or DICOM series folder."""
    from SurgicalAICore.image_io import read_image

    return segment_image(read_image(path), models, options, progress, cancel, notify)
