"""Qt sections of the SurgicalDepth panel (a package, so Slicer does not load them as modules)."""
