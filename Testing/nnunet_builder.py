"""Build a genuine nnU-Net v2 result folder in a test: nnU-Net's own fingerprint, planner,
preprocessor and network code on a small synthetic CT-like dataset, then a few training steps
(just enough for confident, smooth predictions) saved as nnU-Net checkpoints."""
from __future__ import annotations

import json
import os
from multiprocessing.pool import ThreadPool
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk
import torch

DATASET = "Dataset501_Synth"
LABELS = {"background": 0, "liver": 1, "kidney_left": 2}


def dice_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice + cross-entropy (as nnU-Net trains): a few steps learn the small box too."""
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True)(logits, target[:, None])


def synthetic_case(rng: np.random.Generator, shape_kji, spacing_ijk):
    """A CT-like volume: noisy soft tissue, a bright ellipsoid (1) and a brighter box (2)."""
    k, j, i = np.indices(shape_kji, dtype=np.float32)
    image = rng.normal(-40.0, 25.0, shape_kji).astype(np.float32)
    labels = np.zeros(shape_kji, np.uint8)
    centre = [rng.uniform(0.35, 0.65) * s for s in shape_kji]
    radii = [rng.uniform(0.16, 0.24) * s for s in shape_kji]
    blob = sum(((g - c) / r) ** 2 for g, c, r in zip((k, j, i), centre, radii, strict=True)) <= 1.0
    labels[blob] = 1
    lo = [int(rng.uniform(0.05, 0.15) * s) for s in shape_kji]
    size = [max(int(rng.uniform(0.22, 0.3) * s), 4) for s in shape_kji]
    box = tuple(slice(a, a + b) for a, b in zip(lo, size, strict=True))
    labels[box] = 2
    image[labels == 1] += 160.0
    image[labels == 2] += 300.0
    img, seg = sitk.GetImageFromArray(image), sitk.GetImageFromArray(labels)
    for x in (img, seg):
        x.SetSpacing([float(s) for s in spacing_ijk])
        x.SetOrigin((-20.0, 10.0, 5.0))
    return img, seg


def _write_raw(raw: Path, n_cases: int, shape_kji, spacing_ijk) -> None:
    folder = raw / DATASET
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(5)
    for n in range(n_cases):
        img, seg = synthetic_case(rng, shape_kji, spacing_ijk)
        sitk.WriteImage(img, str(folder / "imagesTr" / f"case_{n:03d}_0000.nii.gz"))
        sitk.WriteImage(seg, str(folder / "labelsTr" / f"case_{n:03d}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": n_cases, "file_ending": ".nii.gz"}))


def _plan(features: int, max_features: int):
    from nnunetv2.experiment_planning.dataset_fingerprint import fingerprint_extractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    # nnU-Net's own fingerprint code, in this process: its spawn pool re-imports torch (~20 s) per worker
    original = fingerprint_extractor.multiprocessing
    fingerprint_extractor.multiprocessing = SimpleNamespace(get_context=lambda _kind: SimpleNamespace(Pool=ThreadPool))
    try:
        fingerprint_extractor.DatasetFingerprintExtractor(DATASET, num_processes=1).run()
    finally:
        fingerprint_extractor.multiprocessing = original
    planner = ExperimentPlanner(DATASET)
    planner.UNet_base_num_features = features
    planner.UNet_max_features_3d = max_features
    planner.UNet_max_features_2d = max_features
    planner.plan_experiment()


def _train(configuration: str, root: Path, seed: int, steps: int):
    """A few steps of nnU-Net's network on nnU-Net-preprocessed patches; returns (network, optimizer)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    raw = root / "raw" / DATASET
    plans = PlansManager(json.loads((root / "pre" / DATASET / "nnUNetPlans.json").read_text()))
    config = plans.get_configuration(configuration)
    dataset_json = json.loads((raw / "dataset.json").read_text())
    cases = []
    for img in sorted((raw / "imagesTr").glob("*.nii.gz")):
        seg = raw / "labelsTr" / img.name.replace("_0000", "")
        data, target, _ = DefaultPreprocessor(verbose=False).run_case([str(img)], str(seg), plans, config,
                                                                      dataset_json)
        cases.append((data, target))
    torch.manual_seed(seed)
    arch = config.network_arch_init_kwargs
    network = get_network_from_plans(config.network_arch_class_name, arch, config.network_arch_init_kwargs_req_import,
                                     1, len(LABELS), deep_supervision=False)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    patch = list(config.patch_size)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        data, target = cases[rng.integers(len(cases))]
        if len(patch) == 2:  # a batch of slices along the first axis, mostly ones that show a structure
            shown = np.flatnonzero((target[0] > 0).any(axis=(1, 2)))
            z = rng.choice(shown, 8) if len(shown) else rng.integers(data.shape[1], size=8)
            x = torch.from_numpy(np.ascontiguousarray(data[:, z].transpose(1, 0, 2, 3))).float()
            y = torch.from_numpy(np.ascontiguousarray(target[0, z])).long().clamp(min=0)
            x, y = x[..., : patch[0], : patch[1]], y[..., : patch[0], : patch[1]]
        else:
            starts = [rng.integers(0, max(s - p, 0) + 1) for s, p in zip(data.shape[1:], patch, strict=True)]
            window = tuple(slice(a, a + p) for a, p in zip(starts, patch, strict=True))
            x = torch.from_numpy(np.ascontiguousarray(data[(slice(None), *window)]))[None].float()
            y = torch.from_numpy(np.ascontiguousarray(target[(0, *window)])).long().clamp(min=0)[None]
        pad = [q for s, p in zip(reversed(x.shape[2:]), reversed(patch), strict=True) for q in (0, p - s)]
        x, y = torch.nn.functional.pad(x, pad), torch.nn.functional.pad(y, pad)
        loss = dice_ce(network(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval(), optimizer, float(loss.detach())


def build_result_folder(root: Path, configuration: str = "3d_fullres", folds=(0, 1), steps: int = 40,
                        shape_kji=(40, 40, 24), spacing_ijk=(2.5, 1.0, 1.0), n_cases: int = 3,
                        features: int = 4, max_features: int = 16) -> Path:
    """``root/results/Dataset501_Synth/nnUNetTrainer__nnUNetPlans__<configuration>`` as nnU-Net writes it."""
    os.environ.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
                      nnUNet_results=str(root / "results"))
    if not (root / "pre" / DATASET / "nnUNetPlans.json").is_file():
        _write_raw(root / "raw", n_cases, shape_kji, spacing_ijk)
        _plan(features, max_features)
    out = root / "results" / DATASET / f"nnUNetTrainer__nnUNetPlans__{configuration}"
    out.mkdir(parents=True)
    (out / "plans.json").write_bytes((root / "pre" / DATASET / "nnUNetPlans.json").read_bytes())
    (out / "dataset.json").write_bytes((root / "raw" / DATASET / "dataset.json").read_bytes())
    for fold in folds:
        network, optimizer, loss = _train(configuration, root, seed=fold, steps=steps)
        (out / f"fold_{fold}").mkdir()
        torch.save({
            "network_weights": network.state_dict(), "optimizer_state": optimizer.state_dict(),
            "grad_scaler_state": None, "logging": {"train_losses": [np.float64(loss)]},
            "_best_ema": np.float64(0.5), "current_epoch": 1,
            "init_args": {"plans": json.loads((out / "plans.json").read_text()), "configuration": configuration,
                          "fold": fold, "dataset_json": json.loads((out / "dataset.json").read_text())},
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2) if configuration != "2d" else (0, 1),
        }, str(out / f"fold_{fold}" / "checkpoint_final.pth"))
    return out
