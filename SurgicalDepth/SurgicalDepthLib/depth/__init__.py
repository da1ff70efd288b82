"""Monocular depth: networks, model loading, the frame pipeline, live processing, point clouds, training and metrics."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "adapt": (
        "AdaptConfig", "Clip", "parse_range", "read_clip", "fit_clip_camera", "clip_masks", "AdaptResult",
        "adapt_depth_model", "adapt_for_session", "check_loss_options", "TRAIN_LAYERS",
    ),
    "adapt_losses": (
        "ssim_distance", "photometric_error", "warp", "min_reprojection_loss", "smoothness_loss", "sample_depth",
        "fit_log_scale", "sparse_loss", "prior_loss", "depth_consistency_loss", "distillation_loss",
    ),
    "adapt_motion": (
        "PairMotion", "ClipMotion", "MotionConfig", "track", "two_view_bundle_adjust", "estimate_pair",
        "estimate_clip_motion", "rescale_pair_uv",
    ),
    "augment": (
        "RandTransform", "RandCrop", "RandFlip", "RandIntrinsics", "RandTissueTint", "RandColour", "RandExposure",
        "RandDepthFalloff", "RandSpecular", "RandBlood", "RandSmoke", "RandVignetting", "RandChromaticAberration",
        "RandBlur", "RandMotionBlur", "RandSensorNoise", "RandJpeg", "RandFieldStop", "default_transforms", "Compose",
        "augment_sample",
    ),
    "estimator": ("DepthEstimator",),
    "evaluation": ("evaluate_to_folder",),
    "hf": ("is_hf_depth_folder", "disparity_to_depth", "HFDepthModule", "load_hf_depth_folder",),
    "live": ("LiveStats", "LiveProcessor",),
    "loaders": ("DepthModelLoader", "load_depth_model",),
    "losses": ("silog_loss", "gradient_matching_loss", "depth_loss", "scale_shift_invariant_loss",),
    "metrics": ("depth_metrics", "summarise", "evaluate_estimator",),
    "model": ("default_model_path", "video_model_path", "resolve_model_path", "align_scale", "TorchDepthEstimator",
              "depth_card", "save_depth_model",),
    "network": (
        "make_norm", "conv_bn", "ResidualBlock", "UpBlock", "CompactDepthNet", "build_depth_network", "count_macs",
        "count_parameters",
    ),
    "pipeline": ("DepthResult", "FrameProcessor", "VideoDepthSummary", "process_video",),
    "ply_file": ("read_ply_arrays",),
    "pointcloud": (
        "PointCloud", "Undistorter", "undistorter", "depth_to_pointcloud", "voxel_downsample", "polydata_from_cloud",
        "cloud_from_polydata", "write_ply", "read_ply", "cloud_bounds",
    ),
    "scene": (
        "frame_volume", "depth_volume", "cloud_model", "camera_transform_node", "depth_color_node", "show_depth",
        "show_cloud", "LiveSceneOutput", "RecordedSequenceBuilder", "sequences_logic",
    ),
    "sparse_eval": (
        "load_sparse_references", "sample_bilinear", "sparse_frame_metrics", "brightness_depth", "constant_depth",
        "match_frames", "read_rgb", "read_mask", "evaluate_sparse", "summarise_sparse",
    ),
    "temporal_eval": ("field_of_view_mask", "pair_flows", "pair_consistency", "sequence_consistency",),
    "training": ("TrainConfig", "TrainingSamples", "load_checkpoint", "plot_curves", "train_depth_model",),
})
