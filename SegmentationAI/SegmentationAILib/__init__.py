"""Qt-free library behind the SegmentationAI Slicer module.

Also holds the foundation shared by both modules of the extension (errors, progress and
cancel, device choice, RAS/LPS geometry, volume adapters, model folders). It never imports
qt, ctk or slicer.app; MRML is used only through a scene passed in by the caller.
"""
