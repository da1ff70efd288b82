"""Qt-free panel logic of the SurgicalDepth sections (depth, registration and overlay), bound by the faces."""
