"""Demo step: a synthetic laparoscopic video rendered from the bundled CT, run through SurgicalDepth
as a video file, with depth maps, point clouds (a sequence in the scene), pictures and numbers.

Hands over to the registration step in ``ctx.shared``: ``depth_frames`` (dicts with index, rgb,
depth_true, depth_pred, pose_true, camera), ``camera``, ``video_path``, ``pointcloud_transform_node``,
``scene_surfaces`` (name -> RAS surface the video was rendered from).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics, transform_points


def demo_camera(model) -> CameraIntrinsics:
    """The camera the depth network was trained for (its card), else the synthetic endoscope's."""
    card = getattr(model, "card", None) or {}
    if isinstance(card.get("camera"), dict):
        return CameraIntrinsics.from_dict(card["camera"])
    from SurgicalDepthLib.synthetic.dataset import default_camera

    return default_camera()


def write_mp4(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    import cv2

    from SurgicalAICore.errors import InputError

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise InputError(f"Cannot write the video {path} (no mp4 encoder in this OpenCV).")
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def abs_rel(pred: np.ndarray, true: np.ndarray) -> float:
    valid = (true > 0) & (pred > 0) & np.isfinite(pred)
    return float(np.mean(np.abs(pred[valid] - true[valid]) / true[valid])) if valid.any() else float("nan")


def side_by_side_picture(items, path: Path) -> Path:
    """Rows of frame | predicted depth | true depth, one shared depth colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = np.concatenate([np.r_[d["depth_true"][d["depth_true"] > 0]] for d in items])
    lo, hi = (np.percentile(valid, 2), np.percentile(valid, 98)) if valid.size else (0, 1)
    fig, axes = plt.subplots(len(items), 3, figsize=(9, 2.6 * len(items)), squeeze=False)
    for row, d in zip(axes, items, strict=False):
        row[0].imshow(d["rgb"])
        row[0].set_title(f"frame {d['index']}", fontsize=9)
        for ax, key, title in ((row[1], "depth_pred", "predicted depth"), (row[2], "depth_true", "true depth")):
            shown = np.ma.masked_where(d[key] <= 0, d[key])
            im = ax.imshow(shown, cmap="turbo_r", vmin=lo, vmax=hi)
            ax.set_title(title, fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="depth (mm)")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def clouds_3d_picture(scenario, clouds_ras, path: Path, size=(900, 700)) -> Path:
    """Point clouds placed with the true camera poses over the CT organ surfaces (VTK offscreen)."""
    import vtk

    from SurgicalDepthLib.depth.pointcloud import PointCloud, polydata_from_cloud

    renderer = vtk.vtkRenderer()
    renderer.SetBackground(1, 1, 1)
    for structure in scenario.structures:
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(structure.polydata)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.85, 0.75, 0.7)
        actor.GetProperty().SetOpacity(0.35)
        renderer.AddActor(actor)
    for cloud in clouds_ras:
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(polydata_from_cloud(PointCloud(*cloud)))
        mapper.SetColorModeToDirectScalars()
        mapper.ScalarVisibilityOn()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetPointSize(2)
        renderer.AddActor(actor)
    centre = np.mean([c[0].mean(axis=0) for c in clouds_ras], axis=0)
    from SurgicalAICore.figures import save_offscreen_png

    eye = centre + np.array([-150.0, 350.0, 200.0])  # from the front, above and to the side
    return save_offscreen_png(renderer, path, size, position=eye, focal_point=centre, zoom=1.6)


def run_demo_step(ctx) -> None:
    from SurgicalDepthLib.synthetic.camera_paths import trajectory
    from SurgicalDepthLib.depth.loaders import load_depth_model as load_model
    from SurgicalDepthLib.depth.pipeline import process_video
    from SurgicalDepthLib.synthetic.renderer import RenderOptions, SurfaceRenderer
    from SurgicalDepthLib.synthetic.catalog import load_scenario

    out = Path(ctx.out_dir) / "depth"
    out.mkdir(parents=True, exist_ok=True)
    n_frames = 8 if ctx.quick else 16
    model = load_model(None, ctx.device)
    camera = demo_camera(model)
    ctx.say(f"rendering a {n_frames}-frame laparoscopic video from the bundled CT")
    scenario = load_scenario("laparoscopy")
    poses = trajectory(scenario, n_frames, seed=5, camera=camera)
    renderer = SurfaceRenderer(scenario, camera, RenderOptions(randomise=False))
    try:
        rendered = [renderer.render(pose, seed=i) for i, pose in enumerate(poses)]
    finally:
        renderer.close()
    video = write_mp4([r.rgb for r in rendered], out / "synthetic_laparoscopy.mp4")
    ctx.file("Synthetic laparoscopic video (rendered from the bundled CT)", video)

    ctx.say("running the video through SurgicalDepth")
    results = []
    summary = process_video(video, camera, model, out_dir=out / "frames", scene=ctx.scene, max_points=15000,
                            name="Laparoscope", on_result=results.append)
    frames = []
    for r in results:
        truth = rendered[r.index]
        frames.append({"index": r.index, "rgb": r.rgb, "depth_true": truth.depth_mm, "depth_pred": r.depth_mm,
                       "pose_true": truth.pose, "camera": camera})
    rel = [abs_rel(f["depth_pred"], f["depth_true"]) for f in frames]
    aligned = []
    for f in frames:
        p, t = f["depth_pred"], f["depth_true"]
        valid = (p > 0) & (t > 0)
        if valid.any():
            aligned.append(abs_rel(p * (np.median(t[valid]) / np.median(p[valid])), t))
    ctx.numbers["Depth"] = {
        "frames": summary.frames,
        "AbsRel vs true depth (metric)": float(np.nanmean(rel)),
        "AbsRel after median scaling": float(np.nanmean(aligned)) if aligned else float("nan"),
        "frames/s (video -> depth, cloud, files, scene)": summary.fps,
        "median inference ms": summary.median_ms["infer"],
        "median point-cloud ms": summary.median_ms["cloud"],
        "points per cloud": int(np.median([len(r.cloud) for r in results])),
        "model": (getattr(model, "card", {}) or {}).get("name", "?"),
        "device": str(getattr(model, "device", ctx.device)),
    }
    picks = [frames[i] for i in sorted({0, len(frames) // 2, len(frames) - 1})]
    ctx.picture("Frame | predicted depth | true depth", side_by_side_picture(picks, out / "depth_side_by_side.png"))
    clouds = [(transform_points(f["pose_true"], r.cloud.points).astype(np.float32), r.cloud.colors, r.cloud.depth_mm)
              for f, r in zip(frames, results, strict=False)][:: max(1, len(frames) // 6)]
    ctx.picture("Predicted point clouds placed with the true camera poses over the CT organ surfaces",
                clouds_3d_picture(scenario, clouds, out / "clouds_3d.png"))
    ctx.file("Depth maps (.npy, mm), point clouds (.ply) and timings.csv", out / "frames")
    ctx.shared["depth_frames"] = frames
    ctx.shared["camera"] = camera
    ctx.shared["scene_surfaces"] = {s.name: s.polydata for s in scenario.structures}
    ctx.shared["video_path"] = video
    ctx.shared["pointcloud_transform_node"] = summary.scene_nodes["transform"]
    ctx.shared["depth_browser_node"] = summary.scene_nodes["browser"]
