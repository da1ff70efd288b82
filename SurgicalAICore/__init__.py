"""SlicerSurgicalAI core: the Qt-free foundation both modules stand on.

Errors, progress and cancel, device choice, resources, dependencies, model folders, image I/O, figures,
RAS/LPS geometry, atomic writes and the MRML adapters (`mrml/`). It imports neither module library.
"""
