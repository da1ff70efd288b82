"""Segmentation models made elsewhere: nnU-Net v2 result folders and MONAI bundles."""
from SegmentationAILib.formats.loaders import FormatLoader, find_loader

__all__ = ["FormatLoader", "find_loader"]
