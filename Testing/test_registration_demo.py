"""The demo's registration step on a small rendered scene: TRE per frame, overlay video, 3D picture."""
import numpy as np
import pytest

from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node


@pytest.mark.slow
def test_demo_registration_step_writes_overlays_and_numbers(scene, tmp_path):
    from surgicalai.demo.pipeline import DemoContext
    from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics
    from SurgicalDepthLib.synthetic.camera_paths import look_at
    from surgicalai.demo.registration import run_demo_step
    from SurgicalDepthLib.registration.target import append_polydata, segment_surfaces
    from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer
    from test_registration_session import _labels

    lab, m = _labels()
    labels = [{"value": 1, "name": "balls", "color": [1, 0, 0]}, {"value": 2, "name": "box", "color": [0, 0, 1]}]
    seg = add_segmentation_to_scene(scene, new_segmentation_node(lab, m, labels, closed_surface=False))
    surface = append_polydata(segment_surfaces(seg).values())
    camera = CameraIntrinsics.from_fov(128, 96, 60.0)
    renderer = SurfaceRenderer(surface, camera, RenderOptions(randomise=False), check_inside=False)
    frames = []
    try:
        for i, angle in enumerate((0.0, 0.05, 0.1)):
            pose = look_at(np.array([120 * np.cos(angle), 120 * np.sin(angle), 30.0]), np.zeros(3))
            f = renderer.render(pose, seed=i)
            depth = np.where(f.valid, f.depth_mm, 0.0)
            frames.append({"index": i, "rgb": f.rgb, "depth_true": depth, "depth_pred": depth * 1.05,
                           "pose_true": f.pose, "camera": camera})
    finally:
        renderer.close()
    ctx = DemoContext(out_dir=tmp_path, scene=scene, device="cpu", quick=True)
    ctx.shared.update(depth_frames=frames, segmentation_node=seg, scene_surfaces=segment_surfaces(seg))
    run_demo_step(ctx)
    numbers = ctx.numbers["Registration"]
    assert numbers["max TRE, true depth [mm]"] < 1.0
    assert numbers["trusted frames, true depth"] == "3/3"
    for label in ("true depth", "predicted depth, with scale"):
        per_frame = numbers[f"frames, {label}"]
        assert [e["frame"] for e in per_frame] == [0, 1, 2]
        assert all(e["trust"] in ("trusted", "uncertain", "lost") and e["tre_mm"] >= 0 for e in per_frame)
        # honesty: a frame flagged trusted is within 5 mm, one not flagged lost within 20 mm
        assert all(e["tre_mm"] <= 5.0 for e in per_frame if e["trust"] == "trusted")
        assert all(e["tre_mm"] <= 20.0 for e in per_frame if e["trust"] != "lost")
    out = tmp_path / "registration"
    assert (out / "overlay.mp4").stat().st_size > 0
    assert len(list((out / "overlay_frames").glob("*.png"))) == 3
    assert {p.name for _, p in ctx.pictures} == {"overlay_strip.png", "registered_clouds_3d.png"}
    assert scene.GetNodesByClass("vtkMRMLVectorVolumeNode").GetNumberOfItems() == 1
