"""The training command under torchrun: 2 CPU processes with gloo; after the steps every rank
holds the same weights (DDP averaged the gradients), and they moved away from the start."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{testing!r}, {lib!r}]
    import torch
    torch.set_num_threads(1)
    from test_train_synthetic import make_case, tiny_settings
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(3)]
    out = sys.argv[1]
    result = train(cases[:2], LabelMapping.parse(["ball=1", "box=2"]), out, tiny_settings(epochs=2, steps_per_epoch=2),
                   val_cases=cases[2:])
    rank = int(os.environ["RANK"])
    torch.save(result.network.state_dict(), f"{{out}}.rank{{rank}}.pt")
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
    print("world", os.environ["WORLD_SIZE"], "backend", backend)
""")


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_agree(tmp_path):
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT.format(testing=str(ROOT / "Testing"), lib=str(ROOT / "SegmentationAI")))
    out = tmp_path / "model"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(out)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "world 2 backend gloo" in proc.stdout
    w0 = torch.load(f"{out}.rank0.pt", weights_only=True)
    w1 = torch.load(f"{out}.rank1.pt", weights_only=True)
    for key in w0:
        assert torch.allclose(w0[key], w1[key], atol=1e-6), key
    # only rank 0 wrote the model folder, and it holds trained weights, equal to the ranks'
    from SegmentationAILib.seg_model import build_network, load_segmentation_model

    model = load_segmentation_model(out, device="cpu")
    assert model.card["training"]["world_size"] == 2 and model.card["training"]["steps"] == 4
    torch.manual_seed(0)
    start = build_network(model.card).state_dict()
    assert any(not torch.allclose(start[k].float(), w0[k].float()) for k in w0 if w0[k].is_floating_point())
