"""Training and fine-tuning U-Nets on labelled cases: settings, card, the loop, curves, the GUI job, augmentation and
multi-process training.
"""
from SurgicalAICore.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "card": ("build_card",),
    "curves": ("write_curves",),
    "distributed": (
        "DistContext", "launched_by_torchrun", "init_distributed", "device_for", "wrap_model", "unwrap", "barrier",
        "broadcast_flag", "cleanup", "shutdown",
    ),
    "job": ("TrainingJob",),
    "loop": (
        "split_cases", "PreparedCase", "prepare_case", "dice_per_class", "predict_prepared", "load_checkpoint",
        "train", "train_folds",
    ),
    "settings": ("TrainingSettings", "TrainingResult",),
    "transforms": ("AugmentationSettings", "training_transforms",),
})
