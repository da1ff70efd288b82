"""Video in: frame sources (files, folders, sequences, live image nodes) and frame preparation for the network."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "prep": (
        "field_stop_mask", "specular_mask", "mask_bbox", "fit_camera", "crop_resize", "PreparedFrame",
        "prepare_frame",
    ),
    "sources": (
        "Frame", "to_rgb8", "FrameSource", "VideoFileSource", "ImageFolderSource", "ArraySource", "SequenceSource",
        "LiveSource", "LiveNodeSource", "IGTLinkSource", "open_source",
    ),
})
