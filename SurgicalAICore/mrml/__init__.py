"""MRML adapters: scenes and .mrb bundles, volume, segmentation and transform nodes (scene passed in)."""
