"""Issue 16: SIGTERM and SIGINT sent to the real console command while it writes leave either the whole
result or nothing (no hidden temporaries), and the process exits with one line; two runs writing the
same output: one wins whole, the other fails clearly. Inputs are tiny so each run lasts seconds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


# a launcher (nohup, a job runner) may hand its children SIGINT ignored and cancel signals blocked: exec keeps both
_LAUNCHER = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
             "signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM)); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def start(*argv, cwd=None, launcher=False):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'SegmentationAI'}:{ROOT / 'SurgicalDepth'}",
               OMP_NUM_THREADS="1")
    prefix = [sys.executable, "-c", _LAUNCHER] if launcher else [sys.executable]
    return subprocess.Popen([*prefix, "-m", "surgicalai.cli", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, encoding="utf-8", errors="replace", env=env, cwd=cwd)


def wait_for(condition, process, timeout=180.0):
    """Poll until ``condition()`` (the command has started writing) or the process ended."""
    end = time.time() + timeout
    while time.time() < end and process.poll() is None:
        if condition():
            return True
        time.sleep(0.05)
    return False


def hidden(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def interrupt_while_writing(process, folder: Path, sig, pattern: str):
    started = wait_for(lambda: any(folder.glob(pattern)), process)
    assert started, f"the command ended before writing: {process.communicate()}"
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:  # not cancelled: say what this process passes on to its children
        err += "\n" + _signal_state()
    return process.returncode, err


def _signal_state() -> str:
    """Blocked/ignored signal masks of the test process (a child inherits both)."""
    lines = Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []
    return "pytest process: " + ", ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn")))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_render_interrupted_while_writing_leaves_nothing(tmp_path, sig, code):
    p = start("render", "shapes", "-o", tmp_path / "ds", "--frames", "240", "--paths", "8", "--size", "32x48")
    rc, err = interrupt_while_writing(p, tmp_path, sig, ".tmp-render-*/frames/000002_pose.txt")
    assert rc == code, err
    last = [line for line in err.splitlines() if line.strip()][-1]  # in a log it follows the progress bar
    assert last.endswith("nothing was written half-way.") and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == [], hidden(tmp_path)


def test_a_command_started_with_signals_ignored_or_blocked_still_cancels(tmp_path):
    p = start("render", "shapes", "-o", tmp_path / "ds", "--frames", "240", "--paths", "8", "--size", "32x48",
              launcher=True)
    rc, err = interrupt_while_writing(p, tmp_path, signal.SIGINT, ".tmp-render-*/frames/000002_pose.txt")
    assert rc == 130, err
    assert not (tmp_path / "ds").exists() and hidden(tmp_path) == []


def test_depth_terminated_while_writing_leaves_nothing(tmp_path):
    from test_video_pipeline import tiny_model_folder

    frames = tmp_path / "frames"
    frames.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3)).astype(np.uint8)
    for i in range(300):
        cv2.imwrite(str(frames / f"f{i:04d}.png"), rgb)
    model = tiny_model_folder(tmp_path / "model")
    p = start("depth", frames, "-o", tmp_path / "out", "--model", model, "--device", "cpu")
    rc, err = interrupt_while_writing(p, tmp_path, signal.SIGTERM, ".tmp-out-*/f0002.npy")
    assert rc == 143, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "model"]


def test_segment_terminated_at_any_point_leaves_all_or_nothing(tmp_path):
    import SimpleITK as sitk

    from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct

    model = save_tiny_model(tmp_path / "tiny").path
    ct, _ = synthetic_ct((40, 36, 20), spacing=(2.0, 2.0, 4.0))
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    outcomes = set()
    for delay in (0.0, 0.5, 1.5):
        out = tmp_path / f"o{delay}.seg.nrrd"
        p = start("segment", tmp_path / "ct.nii.gz", "-o", out, "--model", model, "--device", "cpu", "--quiet")
        wait_for(lambda: False, p, timeout=8.0 + delay)  # imports, then into the work
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
        written = {out.exists(), out.with_name(out.name.replace(".seg.nrrd", "_statistics.csv")).exists()}
        assert len(written) == 1, f"one of the two outputs without the other (delay {delay})"
        outcomes.add((p.returncode, written.pop()))
    assert hidden(tmp_path) == []
    # before the handler is installed (imports) the default action kills the process (-15): nothing
    # was written either; a signal held back during the final moves exits 143 with the whole result
    assert all(rc in (0, 143, -signal.SIGTERM) and (whole or rc != 0) for rc, whole in outcomes), outcomes


def test_two_renders_into_the_same_folder_one_wins_whole(tmp_path):
    args = ["render", "shapes", "-o", tmp_path / "ds", "--frames", "6", "--paths", "1", "--size", "32x48"]
    first, second = start(*args), start(*args)
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    refused = next(err for rc, err in results if rc == 2).lower()
    assert "another run" in refused or "already exists" in refused
    import json

    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["frames"] == 6 and len(list((tmp_path / "ds" / "frames").glob("*_rgb.png"))) == 6
    assert hidden(tmp_path) == []


def test_register_terminated_at_any_point_leaves_both_files_or_none(tmp_path):
    import SimpleITK as sitk

    from SurgicalAICore.geometry import sitk_from_array

    k, j, i = np.mgrid[0:40, 0:40, 0:40].astype(float)
    lab = (np.sqrt((i - 18) ** 2 + (j - 20) ** 2 + (k - 20) ** 2) <= 11).astype(np.uint8)
    lab[28:36, 6:16, 22:36] = 2
    sitk.WriteImage(sitk_from_array(lab, np.diag([1.5, 1.5, 1.5, 1.0])), str(tmp_path / "labels.nii.gz"))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "cloud.npy", rng.normal(size=(3000, 3)) * [8, 8, 3] + [27, 30, 30])
    for delay in (6.0, 12.0):
        out = tmp_path / f"o{delay}"
        p = start("register", tmp_path / "cloud.npy", "--segmentation", tmp_path / "labels.nii.gz",
                  "--init", "global", "--budget", "3", "-o", out)
        wait_for(lambda: False, p, timeout=delay)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
        files = {(out / name).exists() for name in ("camera_to_ct.txt", "registration.json")}
        assert len(files) == 1, f"one output without the other (delay {delay}, exit {p.returncode})"
        assert not out.exists() or sorted(f.name for f in out.iterdir()) == ["camera_to_ct.txt", "registration.json"]
    assert hidden(tmp_path) == []


def _model_whole_or_absent(out: Path, names: set[str]) -> bool:
    """The published model folder is either absent or has every file its writer puts in (and nothing hidden)."""
    if not out.exists():
        return False
    found = {p.name for p in out.iterdir()}
    assert names <= found and not any(n.startswith(".") for n in found), found
    return True


def _last_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    return lines[-1] if lines else ""


TRAINED = {"model.json", "model.pt", "weights.sha256", "metrics.json", "curves.png"}


@pytest.mark.slow
def test_train_interrupted_leaves_a_resumable_checkpoint_and_no_half_model(tmp_path):
    """Defined outcome of an interrupted ``train``: no model folder (or the whole one, when the signal
    came as it was moved into place), ``<output>.training`` holding the last finished epoch's checkpoint
    that ``--resume`` continues to a whole model, and no temporary or lock file anywhere."""
    from test_train_cli import TINY, write_cases

    write_cases(tmp_path / "cases", range(3))
    base = ["train", tmp_path / "cases", "--image", "*_ct.nii.gz", "--label", "*_seg.nii.gz", "--class", "ball=1",
            "--epochs", "20", *TINY]
    out = tmp_path / "m"
    work = tmp_path / "m.training"
    # 1: after the first checkpoint, during training (SIGTERM)
    p = start(*base, "-o", out)
    assert wait_for(lambda: (work / "checkpoint.pt").exists(), p), p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and _last_line(err).endswith(
        f"nothing was written half-way; the last finished epoch is kept in {work}: run the same command with "
        "--resume to finish."), err
    assert not out.exists() and hidden(tmp_path) == [] and hidden(work) == []
    # 2: the resumed run, interrupted (SIGINT) as it publishes: whole model or none, checkpoint kept if none
    p = start(*base, "--resume", "-o", out)
    wait_for(lambda: any(tmp_path.glob(".m.*.tmp")) or any(tmp_path.glob(".tmp-*")), p, timeout=300)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)
    assert p.returncode in (0, 130), p.returncode
    published = _model_whole_or_absent(out, TRAINED)
    assert published or (work / "checkpoint.pt").exists()
    assert hidden(tmp_path) == [] and hidden(work) == []
    if not published:  # 3: resume once more, untouched: the whole model
        p = start(*base, "--resume", "-o", out)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert _model_whole_or_absent(out, TRAINED)
    card = __import__("json").loads((out / "model.json").read_text())
    assert card["training"]["steps"] == 20 * 3  # the resumed run finished the planned epochs


@pytest.mark.slow
def test_train_interrupted_before_its_first_epoch_can_start_afresh(tmp_path):
    from test_train_cli import TINY, write_cases

    write_cases(tmp_path / "cases", range(3))
    argv = ["train", tmp_path / "cases", "--image", "*_ct.nii.gz", "--label", "*_seg.nii.gz", "--class", "ball=1",
            "--epochs", "1", *TINY, "-o", tmp_path / "m"]
    p = start(*argv)
    assert wait_for(lambda: (tmp_path / "m.training").exists(), p), p.communicate()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=120)
    assert not (tmp_path / "m").exists() and hidden(tmp_path) == []
    p = start(*argv)  # the work folder holds no finished epoch: a new run may take it
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert _model_whole_or_absent(tmp_path / "m", TRAINED)


ADAPTED = {"model.json", "model.pt", "weights.sha256"}


def _adapt_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    from adapt_helpers import synthetic_clip
    from small_depth_model import small_bundled_model

    frames, _, _, camera = synthetic_clip()
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    model = small_bundled_model(tmp_path / "small")
    camera.save_json(tmp_path / "camera.json")
    return folder, model, tmp_path / "camera.json"


@pytest.mark.slow
def test_adapt_depth_interrupted_leaves_its_checkpoint_or_the_whole_model(tmp_path):
    """Defined outcome of an interrupted ``adapt-depth``: no model folder (or the whole one), the last
    checkpoint (every 50 steps) in ``<output>.checkpoints`` that ``--resume`` continues, no temporary."""
    frames, model, camera = _adapt_inputs(tmp_path)
    out = tmp_path / "adapted"
    ckpt = tmp_path / "adapted.checkpoints"
    base = ["adapt-depth", frames, "--model", model, "--camera", camera, "--batch-size", "2", "--threads", "1",
            "--holdout", "0.3", "-o", out]
    p = start(*base, "--minutes", "3")
    assert wait_for(lambda: (ckpt / "last.pt").exists(), p, timeout=300), p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and _last_line(err).endswith(
        f"nothing was written half-way; the adaptation so far is kept in {ckpt / 'last.pt'}: run the same command "
        "with --resume to continue."), err
    assert not out.exists() and sorted(f.name for f in ckpt.iterdir()) == ["last.pt"]
    assert hidden(tmp_path) == []
    # the resumed run, SIGINT as the model folder is written: whole model (checkpoint gone) or none (kept)
    p = start(*base, "--resume", "--minutes", "0.2")
    wait_for(lambda: any(tmp_path.glob(".tmp-*")), p, timeout=300)
    p.send_signal(signal.SIGINT)
    out_text, err = p.communicate(timeout=120)
    assert p.returncode in (0, 130), err
    assert "resumed at step" in out_text, out_text
    if _model_whole_or_absent(out, ADAPTED):
        assert not ckpt.exists()
    else:
        assert (ckpt / "last.pt").exists()
    assert hidden(tmp_path) == []


def test_segment_and_depth_onto_an_output_another_run_writes_fail_clearly(tmp_path):
    """While one run holds an output (here the test takes its lock, as a first ``segment``/``depth`` does
    for its whole run), a second run onto it exits 2 naming the holder and leaves the first's result alone."""
    import SimpleITK as sitk

    from test_video_pipeline import tiny_model_folder

    from SegmentationAILib.synthetic import save_tiny_model, synthetic_ct
    from SurgicalAICore.locks import run_lock

    seg_model = save_tiny_model(tmp_path / "tiny").path
    ct, _ = synthetic_ct((24, 20, 12), spacing=(2.0, 2.0, 4.0))
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((48, 64, 3), 60 * i, np.uint8))
    depth_model = tiny_model_folder(tmp_path / "dmodel")
    seg = ["segment", tmp_path / "ct.nii.gz", "-o", tmp_path / "o.seg.nrrd", "--model", seg_model, "--device", "cpu",
           "--quiet"]
    depth = ["depth", frames, "-o", tmp_path / "out", "--model", depth_model, "--device", "cpu"]
    for argv, out in ((seg, tmp_path / "o.seg.nrrd"), (depth, tmp_path / "out")):
        with run_lock(out):
            p = start(*argv)
            _, err = p.communicate(timeout=300)
        assert p.returncode == 2 and f"Another run (process {os.getpid()}) is writing {out.name}" in err, err
        assert not out.exists() and hidden(tmp_path) == []
        p = start(*argv)  # once the holder is done, the run goes through
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.exists() and hidden(tmp_path) == [], err
