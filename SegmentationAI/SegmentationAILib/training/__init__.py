"""Training and fine-tuning U-Nets on labelled cases: the loop, its settings, augmentation and multi-process training."""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "distributed": ("DistContext", "launched_by_torchrun", "init_distributed", "device_for", "wrap_model", "unwrap", "barrier", "broadcast_flag", "cleanup", "shutdown",),
    "loop": ("TrainingSettings", "TrainingResult", "split_cases", "build_card", "PreparedCase", "prepare_case", "write_curves", "dice_per_class", "predict_prepared", "load_checkpoint", "train", "train_folds", "TrainingJob",),
    "transforms": ("AugmentationSettings", "training_transforms",),
})
