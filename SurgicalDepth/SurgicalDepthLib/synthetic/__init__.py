"""Synthetic endoscopy rendered from CT: scenarios, camera paths, textures, renderer and datasets with exact depth."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "camera_paths": ("look_at", "PosePlanner", "random_poses", "trajectory",),
    "catalog": ("load_scenario",),
    "dataset": (
        "encode_depth", "decode_depth", "DatasetWriter", "SyntheticDepthDataset", "parse_size", "default_camera",
        "render_dataset",
    ),
    "limb": ("limb_surface_scenario",),
    "renderer": ("RenderOptions", "RenderedFrame", "opengl_projection", "zbuffer_to_depth", "SurfaceRenderer",),
    "scenarios": (
        "polydata_points", "polydata_normals", "check_closed_surface", "VolumeSampler",
        "orient_normals_out_of_tissue", "surface_from_labels", "cavity_surface", "Structure", "CameraStrategy",
        "Scenario", "airway_lumen_mask", "shapes_scenario", "ct_cavity_scenario",
    ),
    "textures": ("TissueLook", "look_for", "ValueNoise3D", "albedo",),
})
