"""Demo step: register the synthetic video's point clouds to the CT, track them frame to frame,
overlay CT structures on the video, and picture the registered clouds on the CT in 3D."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from SurgicalDepthLib.camera.intrinsics import backproject
from SurgicalDepthLib.registration.icp import pose_error
from SurgicalDepthLib.registration.evaluation import tre_mm
from SurgicalDepthLib.registration.shapes import apply, perturbation

HIDDEN_FIRST = ("pancreas", "kidney", "gallbladder", "aorta", "vena", "vein", "artery", "tumor", "duodenum")


def _target_and_surfaces(ctx):
    """The registration target and the structures to overlay.

    The target is the CT's organ surfaces that the endoscope sees (the sample CT's reference organs:
    liver, stomach, bowel, ...): a laparoscopic view is mostly bowel, which the default segmentation
    model does not segment, and registering to a surface set that lacks half of what the camera sees
    lands in a wrong minimum. The overlay shows the hidden structures of the segmentation made in the
    first step (pancreas, kidneys, aorta ...) when there is one, else the reference organs'.
    """
    from SurgicalAICore.errors import InputError

    from SurgicalDepthLib.registration.target import append_polydata, segment_surfaces, target_from_polydata
    from SurgicalDepthLib.synthetic.catalog import load_scenario

    surfaces = ctx.shared.get("scene_surfaces")  # what the video was rendered from, when the depth step says
    if not surfaces:
        surfaces = {s.name: s.polydata for s in load_scenario("laparoscopy").structures}
    target = target_from_polydata(append_polydata(surfaces.values()), name="sample CT organ surfaces",
                                  segments=surfaces)
    overlay_from = surfaces
    node = ctx.shared.get("segmentation_node")
    if node is not None:
        try:
            overlay_from = segment_surfaces(node)
        except InputError as error:
            ctx.say(f"segmentation has no usable surface ({error}); overlaying the reference organs")
    return target, surfaces, overlay_from, "CT organ surfaces the video shows"


def _overlay_choice(surfaces: dict[str, object]) -> dict[str, object]:
    chosen = {k: v for k, v in surfaces.items() if any(h in k.lower() for h in HIDDEN_FIRST)}
    if not chosen:
        chosen = dict(list(surfaces.items())[:3])
    return dict(list(chosen.items())[:6])


def _cloud(depth: np.ndarray, camera, rng, max_points: int = 8000) -> np.ndarray:
    d = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0)
    pts = backproject(d, camera)
    if len(pts) > max_points:
        pts = pts[rng.choice(len(pts), max_points, replace=False)]
    return pts


def clouds_on_ct_picture(surfaces: dict[str, object], clouds: list[np.ndarray], path: Path,
                         size=(900, 700)) -> Path:
    """Offscreen VTK picture: CT surfaces (translucent) and registered clouds (one colour each)."""
    import vtk
    from vtk.util import numpy_support

    renderer = vtk.vtkRenderer()
    renderer.SetBackground(1, 1, 1)
    for poly in surfaces.values():
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.85, 0.7, 0.65)
        actor.GetProperty().SetOpacity(0.35)
        renderer.AddActor(actor)
    palette = np.array([[0.1, 0.4, 0.9], [0.9, 0.2, 0.1], [0.1, 0.7, 0.2], [0.8, 0.5, 0.0], [0.5, 0.1, 0.8]])
    for i, pts in enumerate(clouds):
        vp = vtk.vtkPoints()
        vp.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(pts, np.float64), deep=True))
        poly = vtk.vtkPolyData()
        poly.SetPoints(vp)
        glyph = vtk.vtkVertexGlyphFilter()
        glyph.SetInputData(poly)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(glyph.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*palette[i % len(palette)])
        actor.GetProperty().SetPointSize(2)
        renderer.AddActor(actor)
    centre = np.vstack(clouds).mean(axis=0)
    from SurgicalAICore.figures import save_offscreen_png

    eye = centre + np.array([-120.0, 300.0, 160.0])  # from the front, above and to the side
    return save_offscreen_png(renderer, path, size, position=eye, focal_point=centre, zoom=1.5)


def run_demo_step(ctx) -> None:
    from SurgicalDepthLib.overlay.follow_camera import endoscope_camera_node, follow_camera
    from SurgicalDepthLib.video.prep import field_stop_mask
    from SurgicalDepthLib.overlay.composite import overlay_volume_node, structures_from_surfaces, write_mp4, write_png
    from SurgicalDepthLib.overlay.trust_overlay import overlay_for_state
    from SurgicalAICore.mrml.transforms import set_matrix
    from SurgicalDepthLib.registration.tracking import FrameTracker

    frames = ctx.shared.get("depth_frames")
    if not frames:
        ctx.say("no depth frames from the previous step; registration skipped")
        return
    out = Path(ctx.out_dir) / "registration"
    out.mkdir(parents=True, exist_ok=True)
    camera = frames[0]["camera"]
    target, surfaces, overlay_surfaces, target_what = _target_and_surfaces(ctx)
    centroids = np.array([np.asarray(p.GetCenter()) for p in surfaces.values()])
    rng = np.random.default_rng(0)
    device = "cpu" if ctx.device in (None, "auto") else ctx.device

    # start 15 deg / 10 mm away from the truth: global search around it, then track frame to frame
    first = frames[0]
    clouds = {kind: [_cloud(f[f"depth_{kind}"], camera, rng) for f in frames] for kind in ("true", "pred")}
    start = perturbation(15.0, 10.0, apply(first["pose_true"], clouds["true"][0]).mean(0), rng) @ first["pose_true"]
    ctx.say(f"registering {len(frames)} frames to the {target_what}, starting 15 deg / 10 mm off")
    per_kind = {}
    for kind, scale in (("true", False), ("pred", True)):
        # the tracker starts from the user's pose and searches around it itself when its first fit fails: the
        # first trusted pose must agree with that start (within the motion bound), so a search that slid
        # elsewhere cannot become the anchor every later frame agrees with
        tracker = FrameTracker(target, start, scale=scale, max_points=8000, exact_final=1,
                               max_rms_mm=1.5 if kind == "true" else 4.0, device=device)
        results = [tracker.update(c) for c in clouds[kind]]
        tres = [tre_mm(r.matrix, f["pose_true"], centroids) for r, f in zip(results, frames, strict=False)]
        per_kind[kind] = (results, tres)
        for f, r, t in zip(frames, results, tres, strict=False):
            ctx.say(f"  {kind} depth, frame {f['index']}: TRE {t:.2f} mm, {r.state}, residual {r.icp.rms_mm:.2f} mm, "
                    f"inliers {100 * r.icp.inlier_fraction:.0f}%, {1000 * r.seconds:.0f} ms"
                    f"{'' if r.trusted else ' (' + r.reason + ')'}")

    results, tres = per_kind["pred"]
    numbers = ctx.numbers.setdefault("Registration", {})
    numbers["target"] = target_what
    numbers["start misalignment"] = ("15 deg / 10 mm (the tracker searches around it when its first fit fails, "
                                     "then follows frame to frame)")
    for kind, label in (("true", "true depth"), ("pred", "predicted depth, with scale")):
        r_k, t_k = per_kind[kind]
        numbers[f"median TRE at organ centroids, {label} [mm]"] = round(float(np.median(t_k)), 2)
        numbers[f"max TRE, {label} [mm]"] = round(float(np.max(t_k)), 2)
        numbers[f"median rotation error, {label} [deg]"] = round(float(np.median(
            [pose_error(r.matrix, f["pose_true"])[0] for r, f in zip(r_k, frames, strict=False)])), 2)
        for state in ("trusted", "uncertain", "lost"):
            numbers[f"{state} frames, {label}"] = f"{sum(r.state == state for r in r_k)}/{len(r_k)}"
        numbers[f"frames, {label}"] = [{"frame": int(f["index"]), "tre_mm": round(float(t), 3), "trust": r.state}
                                       for f, r, t in zip(frames, r_k, t_k, strict=False)]
        numbers[f"median update ms, {label}"] = round(1000 * float(np.median([r.seconds for r in r_k[1:] or r_k])), 1)
    trusted = [t for kind in per_kind for r, t in zip(*per_kind[kind], strict=False) if r.state == "trusted"]
    numbers["worst TRE of a trusted frame [mm]"] = round(float(max(trusted)), 3) if trusted else None
    shown = [t for kind in per_kind for r, t in zip(*per_kind[kind], strict=False) if r.state != "lost"]
    numbers["worst TRE of a frame not flagged lost [mm]"] = round(float(max(shown)), 3) if shown else None

    # the scene: the point clouds' camera-to-CT transform follows the registration; the 3D view the endoscope
    node = ctx.shared.get("pointcloud_transform_node")
    good = [r for r in results if r.trusted]
    if node is not None and good:  # the scene shows the last trusted pose only
        set_matrix(node, good[-1].matrix)
    if good:
        follow_camera(endoscope_camera_node(ctx.scene), good[-1].matrix, camera)

    structures = structures_from_surfaces(_overlay_choice(overlay_surfaces))
    overlaid = []
    frame_dir = out / "overlay_frames"
    frame_dir.mkdir(exist_ok=True)
    for f, r in zip(frames, results, strict=False):
        img = overlay_for_state(f["rgb"], structures, r.matrix, camera, r.state, opacity=0.35, outline_px=1,
                                field_of_view=field_stop_mask(f["rgb"]))
        overlaid.append(img)
        write_png(frame_dir / f"overlay_{f['index']:04d}.png", img)
    overlay_volume_node(ctx.scene, overlaid[-1], "CT structures on video")
    video = write_mp4(out / "overlay.mp4", overlaid, fps=5)
    ctx.file("Video with CT structures overlaid (registered with predicted depth)", video)
    ctx.file("Overlay frames (PNG)", frame_dir)
    picks = sorted({0, len(overlaid) // 2, len(overlaid) - 1})
    strip = np.concatenate([overlaid[i] for i in picks], axis=1)
    ctx.picture("Hidden CT structures (" + ", ".join(s.name for s in structures) + ") overlaid on the video "
                "with the registered pose (filled: trusted; outline + amber banner: uncertain; red banner, no "
                "overlay: lost), frames " + ", ".join(str(frames[i]["index"]) for i in picks),
                write_png(out / "overlay_strip.png", strip))
    placed = [apply(r.matrix, c) for r, c in zip(results, clouds["pred"], strict=False) if r.state != "lost"]
    placed = placed[:: max(1, len(results) // 5)]
    placed = placed or [apply(results[0].matrix, clouds["pred"][0])]
    ctx.picture("Predicted-depth point clouds placed by the registration on the CT surfaces (3D)",
                clouds_on_ct_picture(surfaces, placed, out / "registered_clouds_3d.png"))
