"""Monocular depth: networks, model loading, the frame pipeline, live processing, point clouds, training and metrics."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "estimator": ("DepthEstimator",),
    "hf": ("is_hf_depth_folder", "disparity_to_depth", "HFDepthModule", "load_hf_depth_folder",),
    "live": ("LiveStats", "LiveProcessor",),
    "loaders": ("DepthModelLoader", "load_depth_model",),
    "losses": ("silog_loss", "gradient_matching_loss", "depth_loss",),
    "metrics": ("depth_metrics", "summarise", "evaluate_estimator",),
    "model": ("default_model_path", "align_scale", "TorchDepthEstimator", "depth_card", "save_depth_model",),
    "network": (
        "make_norm", "conv_bn", "ResidualBlock", "UpBlock", "CompactDepthNet", "build_depth_network", "count_macs",
        "count_parameters",
    ),
    "pipeline": ("DepthResult", "FrameProcessor", "VideoDepthSummary", "process_video",),
    "pointcloud": (
        "PointCloud", "Undistorter", "undistorter", "depth_to_pointcloud", "voxel_downsample", "polydata_from_cloud",
        "cloud_from_polydata", "write_ply", "read_ply", "cloud_bounds",
    ),
    "scene": (
        "frame_volume", "depth_volume", "cloud_model", "camera_transform_node", "depth_color_node", "show_depth",
        "show_cloud", "LiveSceneOutput", "RecordedSequenceBuilder", "sequences_logic",
    ),
    "training": (
        "TrainConfig", "augment_sample", "TrainingSamples", "load_checkpoint", "plot_curves", "train_depth_model",
    ),
})
