"""Qt-free panel logic shared by the Slicer faces and the web faces: typed parameter-node state and a job runner."""
