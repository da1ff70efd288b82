"""Registration of depth point clouds to the patient's CT: targets, initial poses, ICP, tracking, evaluation."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "calibration": ("noisy_depth", "calibration_rows",),
    "depth_correction": ("DepthCorrectedResult", "joint_depth_shift", "register_depth_aware",),
    "evaluation": ("EvalFrame", "EvalSetup", "tre_mm", "cloud_from_depth", "prepare", "run_trials", "summarise",),
    "files": ("read_points_file", "load_target_file",),
    "fusion": ("FusedCloud", "fuse_clouds", "fuse_frames", "write_fused",),
    "icp": (
        "ICPResult", "check_cloud", "rotation_matrix", "TargetTensors", "cpu_threads", "icp_batch", "icp",
        "rotation_angle_deg", "pose_error",
    ),
    "initial_pose": (
        "init_from_tracking", "landmark_transform", "points_from_pixels", "random_rotations", "GlobalInitResult",
        "global_init", "rotation_error_deg", "PoseInputs", "PoseInitialiser", "initial_pose",
    ),
    "meshes": ("read_mesh", "check_mesh", "model_node_polydata", "target_from_mesh",),
    "motion": ("check_rigid", "MotionModel",),
    "quality": ("RegistrationQuality", "assess",),
    "register": ("RegistrationResult", "pose_inputs", "register_cloud", "cloud_points_from_model_node",),
    "shapes": (
        "organ_polydata", "rotation_about_axis", "perturbation", "visible_patch", "surface_samples", "apply",
        "outliers",
    ),
    "target": (
        "LookupGrid", "RegistrationTarget", "decimate", "mesh_arrays", "sample_surface", "build_lookup_grid",
        "target_from_polydata", "append_polydata", "transform_polydata", "segment_surfaces",
        "target_from_segmentation", "threshold_surface", "target_from_threshold",
    ),
    "tracking": ("TrackResult", "FrameTracker",),
    "trust": (
        "TrustFeatures", "TrustLimits", "TrustCalibration", "features", "classify", "rank", "calibrate", "evaluate",
        "only_conditioning_fails",
    ),
})
