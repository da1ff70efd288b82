"""The demo's depth step end to end: render -> mp4 -> SurgicalDepth -> files, pictures, scene, hand-over."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_demo_depth_step_quick(tmp_path):
    from SurgicalAICore.mrml.scene import new_scene
    from SurgicalAICore.mrml.bundle import load_scene_bundle, save_scene_bundle
    from surgicalai.demo.depth import run_demo_step
    from surgicalai.demo.pipeline import DemoContext

    ctx = DemoContext(out_dir=tmp_path, scene=new_scene(), device="cpu", quick=True)
    run_demo_step(ctx)
    frames = ctx.shared["depth_frames"]
    assert len(frames) == 8 == ctx.numbers["Depth"]["frames"]
    camera = ctx.shared["camera"]
    for f in frames:
        assert set(f) == {"index", "rgb", "depth_true", "depth_pred", "pose_true", "camera"}
        assert f["depth_pred"].shape == f["depth_true"].shape == (camera.height, camera.width)
        assert f["rgb"].dtype == np.uint8 and f["pose_true"].shape == (4, 4)
    assert 0 <= ctx.numbers["Depth"]["AbsRel vs true depth (metric)"] < 5
    assert ctx.shared["video_path"].suffix == ".mp4" and ctx.shared["video_path"].stat().st_size > 1000
    assert ctx.shared["pointcloud_transform_node"].GetScene() is ctx.scene
    out = tmp_path / "depth" / "frames"
    assert len(list(out.glob("*.npy"))) == 8 and len(list(out.glob("*.ply"))) == 8
    assert all(p.stat().st_size > 10000 for _, p in ctx.pictures)
    reloaded = load_scene_bundle(save_scene_bundle(ctx.scene, tmp_path / "scene.mrb"))
    seqs = reloaded.GetNodesByClass("vtkMRMLSequenceNode")
    counts = {seqs.GetItemAsObject(i).GetName(): seqs.GetItemAsObject(i).GetNumberOfDataNodes()
              for i in range(seqs.GetNumberOfItems())}
    assert counts["Laparoscope pointcloud sequence"] == 8 and counts["Laparoscope depth sequence"] == 8
