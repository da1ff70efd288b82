"""Qt-free library behind the SurgicalDepth Slicer module: camera model, video sources, depth
network, point clouds, synthetic endoscopy, registration to CT and overlay.

Builds on the foundation in SegmentationAILib (errors, progress/cancel, device, geometry).
Never imports qt, ctk or slicer.app; MRML only through a scene passed in by the caller.
"""
