"""Qt sections of the SegmentationAI panel (a package, so Slicer does not load them as modules)."""
