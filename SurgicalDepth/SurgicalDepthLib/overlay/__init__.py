"""CT structures drawn on the video: projection, compositing, and the 3-D view following the camera."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "composite": (
        "OverlayStructure", "StructureGeometry", "structures_from_surfaces", "ras_to_camera", "project_ras",
        "structure_mask", "silhouette",
        "overlay_frame", "overlay_volume_node", "write_png", "write_mp4",
    ),
    "follow_camera": ("rigid_part", "follow_camera", "endoscope_camera_node",),
})
