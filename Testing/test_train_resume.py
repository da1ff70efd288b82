"""A training process killed (SIGKILL) mid-epoch resumes from its last checkpoint and reaches exactly
the state an uninterrupted run has at the same step."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{testing!r}, {lib!r}]
    import torch
    torch.set_num_threads(1)
    from test_train_synthetic import make_case, tiny_settings
    from SegmentationAILib.label_mapping import LabelMapping
    from SegmentationAILib.training.transforms import AugmentationSettings
    from SegmentationAILib.training.loop import train

    cases = [make_case(s) for s in range(4)]
    settings = tiny_settings(epochs=3, steps_per_epoch=3, augmentation=AugmentationSettings())
    settings.augmentation.samples_per_case = 1
    steps = open(sys.argv[2], "a")

    def progress(fraction, message):
        if " step " in message:
            steps.write(message.split(" step ")[1].split("/")[0] + "\\n")
            steps.flush()
            time.sleep(float(sys.argv[3]))

    train(cases[:3], LabelMapping.parse(["ball=1", "box=2"]), sys.argv[1], settings, val_cases=cases[3:],
          resume=len(sys.argv) > 4, progress=progress)
""")


def run_script(tmp_path, out, delay, resume=False):
    script = tmp_path / "train_job.py"
    script.write_text(SCRIPT.format(testing=str(ROOT / "Testing"), lib=str(ROOT / "SegmentationAI")))
    args = [sys.executable, str(script), str(out), str(tmp_path / f"{out.name}.steps"), str(delay)]
    if resume:
        args.append("resume")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def checkpoint_state(path: Path):
    from SegmentationAILib.training.loop import load_checkpoint

    return load_checkpoint(path / "checkpoint.pt")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    steps_file = tmp_path / "killed.steps"
    job = run_script(tmp_path, killed_out, delay=0.3)
    deadline = time.time() + 240
    # kill in the middle of epoch 3 (steps 7..9), after the epoch-2 checkpoint exists
    while time.time() < deadline:
        done = [int(x) for x in steps_file.read_text().split()] if steps_file.exists() else []
        if done and done[-1] >= 7:
            break
        if job.poll() is not None:
            pytest.fail(f"training ended early: {job.stdout.read().decode()[-2000:]}")
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(30)
    assert job.returncode == -signal.SIGKILL
    assert not killed_out.exists()  # no half-written model folder
    mid = checkpoint_state(Path(str(killed_out) + ".training"))
    assert mid["epoch"] == 2 and mid["step"] == 6

    resumed = run_script(tmp_path, killed_out, delay=0.0, resume=True)
    clean = run_script(tmp_path, clean_out, delay=0.0)
    for job in (resumed, clean):
        out = job.communicate(timeout=300)[0].decode()
        assert job.returncode == 0, out[-2000:]

    a = checkpoint_state(Path(str(killed_out) + ".training"))
    b = checkpoint_state(Path(str(clean_out) + ".training"))
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"] == 9
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=False):
        assert all(torch.equal(sa[k], sb[k]) for k in sb)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 9
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # both wrote the same final model
    wa = torch.load(killed_out / "model.pt", weights_only=True)
    wb = torch.load(clean_out / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wb)
