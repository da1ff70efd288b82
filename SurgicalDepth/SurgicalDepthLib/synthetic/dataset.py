"""Synthetic depth datasets on disk: a streaming writer, a checked reader (torch Dataset), the renderer loop.

Folder format (version 1)::

    DIR/
      dataset.json   {"format": "surgicalai-synthetic-depth", "version": 1, "frames": N,
                      "size": [H, W], "depth_encoding": "png16", "depth_unit_mm": 0.01,
                      "paths": [{"id", "scenario", "seed", "first", "count", "split"}], ...}
      camera.json    CameraIntrinsics (OpenCV pinhole, pixel centres at integers)
      index.csv      frame,path,scenario,split,rgb,depth,pose,valid_fraction
      frames/000123_rgb.png     8-bit RGB
      frames/000123_depth.png   16-bit z-depth in units of 0.01 mm (0 = invalid; max 655.35 mm)
      frames/000123_pose.txt    4x4 camera-to-RAS matrix (mm)

Frames of one camera path are consecutive video frames; ``split`` is assigned per path, so
neighbouring frames never land in different splits. The writer streams frames to a hidden temporary
folder beside ``DIR`` and renames it only when complete: an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from SurgicalAICore.errors import InputError
from SurgicalAICore.progress import CancelToken, Progress

from SurgicalDepthLib.camera.intrinsics import CameraIntrinsics

FORMAT = "surgicalai-synthetic-depth"
VERSION = 1
DEPTH_UNIT_MM = 0.01
INDEX_FIELDS = ["frame", "path", "scenario", "split", "rgb", "depth", "pose", "valid_fraction"]


def encode_depth(depth_mm: np.ndarray) -> np.ndarray:
    q = np.round(np.asarray(depth_mm, np.float64) / DEPTH_UNIT_MM)
    q[~np.isfinite(q) | (q <= 0) | (q > 65535)] = 0  # out of range is invalid, never clipped to a wrong value
    return q.astype(np.uint16)


def decode_depth(png16: np.ndarray) -> np.ndarray:
    return png16.astype(np.float32) * np.float32(DEPTH_UNIT_MM)


class DatasetWriter:
    """Streams frames into a dataset folder; use as a context manager."""

    def __init__(
        self, out_dir: str | Path, camera: CameraIntrinsics, overwrite: bool = False, meta: dict | None = None
    ):
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not overwrite:
            raise InputError(f"Output folder {self.out_dir} already exists; choose another or allow overwriting.")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.out_dir.parent, os.W_OK):
            raise InputError(f"Cannot write to {self.out_dir.parent}.")
        self.camera = camera
        self.overwrite = overwrite
        self.meta = dict(meta or {})
        self.tmp = Path(tempfile.mkdtemp(prefix=".tmp-render-", dir=self.out_dir.parent))
        (self.tmp / "frames").mkdir()
        self._index = open(self.tmp / "index.csv", "w", newline="")
        self._csv = csv.DictWriter(self._index, fieldnames=INDEX_FIELDS)
        self._csv.writeheader()
        self.paths: list[dict] = []
        self.count = 0
        self._closed = False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def begin_path(self, path_id: str, scenario: str, seed: int, split: str = "train") -> None:
        self.paths.append(
            {"id": path_id, "scenario": scenario, "seed": int(seed), "first": self.count, "count": 0, "split": split}
        )

    def add(self, frame) -> int:
        """Write one :class:`RenderedFrame` to the current path; returns its frame number."""
        import cv2

        if not self.paths:
            raise InputError("begin_path() must be called before adding frames.")
        self.camera.check_frame(frame.rgb.shape[1], frame.rgb.shape[0])
        path = self.paths[-1]
        i = self.count
        stem = f"frames/{i:06d}"
        if not cv2.imwrite(str(self.tmp / f"{stem}_rgb.png"), np.ascontiguousarray(frame.rgb[..., ::-1])):
            raise InputError(f"Cannot write {stem}_rgb.png (disk full?).")
        cv2.imwrite(str(self.tmp / f"{stem}_depth.png"), encode_depth(np.where(frame.valid, frame.depth_mm, 0)))
        np.savetxt(self.tmp / f"{stem}_pose.txt", frame.pose, fmt="%.9g")
        self._csv.writerow(
            {
                "frame": i,
                "path": path["id"],
                "scenario": path["scenario"],
                "split": path["split"],
                "rgb": f"{stem}_rgb.png",
                "depth": f"{stem}_depth.png",
                "pose": f"{stem}_pose.txt",
                "valid_fraction": f"{frame.valid_fraction:.4f}",
            }
        )
        path["count"] += 1
        self.count += 1
        return i

    def close(self) -> Path:
        if self._closed:
            return self.out_dir
        self._index.close()
        self.camera.save_json(self.tmp / "camera.json")
        info = {
            "format": FORMAT,
            "version": VERSION,
            "frames": self.count,
            "size": [self.camera.height, self.camera.width],
            "depth_encoding": "png16",
            "depth_unit_mm": DEPTH_UNIT_MM,
            "camera": "camera.json",
            "index": "index.csv",
            "paths": self.paths,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **self.meta,
        }
        (self.tmp / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
        try:
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.out_dir

    def _publish(self) -> None:
        """Swap the finished folder in with interrupts held back, so the old dataset is never lost
        without the new one in place; one that appeared meanwhile (another run) is not replaced."""
        from SurgicalAICore.atomic import publish
        from SurgicalAICore.signals import signals_deferred

        if self.out_dir.exists() and not self.overwrite:
            raise InputError(
                f"Output folder {self.out_dir} appeared while rendering (another run?); "
                "it was left as it is and this run's frames were discarded."
            )
        old = None
        with signals_deferred():
            if self.out_dir.exists():
                old = Path(tempfile.mkdtemp(prefix=".old-render-", dir=self.out_dir.parent))
                os.replace(self.out_dir, old / "dataset")
            publish(self.tmp, self.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if not self._closed:
            self._index.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._closed = True


class SyntheticDepthDataset:
    """Reads a dataset folder (checked on open). Items: dict(rgb HxWx3 uint8, depth_mm HxW float32, pose, ...).

    ``split``/``scenarios``/``path_ids`` select camera paths. Usable directly as a torch Dataset.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        scenarios: Sequence[str] | None = None,
        path_ids: Sequence[str] | None = None,
        exclude_scenarios: Sequence[str] | None = None,
    ):
        self.root = Path(root)
        info_path = self.root / "dataset.json"
        if not info_path.is_file():
            raise InputError(f"{self.root} is not a synthetic depth dataset (no dataset.json).")
        try:
            self.info = json.loads(info_path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{info_path} is not valid JSON ({error}).") from None
        if self.info.get("format") != FORMAT or self.info.get("version") != VERSION:
            raise InputError(
                f"{info_path}: unsupported dataset format {self.info.get('format')} v{self.info.get('version')}."
            )
        self.camera = (
            CameraIntrinsics.load_json(self.root / "camera.json")
            if (self.root / "camera.json").is_file()
            else _raise(f"Dataset {self.root} has no camera.json.")
        )
        index = self.root / "index.csv"
        if not index.is_file():
            raise InputError(f"Dataset {self.root} has no index.csv.")
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f))
        if len(rows) != int(self.info.get("frames", -1)):
            raise InputError(
                f"Dataset {self.root}: index.csv lists {len(rows)} frames but dataset.json says "
                f"{self.info.get('frames')}."
            )
        missing = [r[k] for r in rows for k in ("rgb", "depth", "pose") if not (self.root / r[k]).is_file()]
        if missing:
            raise InputError(f"Dataset {self.root} is missing {len(missing)} file(s), e.g. {missing[0]}.")
        keep = rows
        if split is not None:
            keep = [r for r in keep if r["split"] == split]
        if scenarios is not None:
            keep = [r for r in keep if r["scenario"] in set(scenarios)]
        if exclude_scenarios is not None:
            keep = [r for r in keep if r["scenario"] not in set(exclude_scenarios)]
        if path_ids is not None:
            keep = [r for r in keep if r["path"] in set(path_ids)]
        self.rows = keep

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, i: int) -> dict:
        import cv2

        r = self.rows[i]
        bgr = cv2.imread(str(self.root / r["rgb"]), cv2.IMREAD_COLOR)
        depth = cv2.imread(str(self.root / r["depth"]), cv2.IMREAD_UNCHANGED)
        if bgr is None or depth is None:
            raise InputError(f"Dataset {self.root}: frame {r['frame']} cannot be read (corrupt image).")
        size = (self.camera.height, self.camera.width)
        if bgr.shape[:2] != size or depth.shape[:2] != size or depth.dtype != np.uint16:
            raise InputError(
                f"Dataset {self.root}: frame {r['frame']} does not match the camera size {size[1]}x{size[0]} "
                "or its depth is not 16-bit."
            )
        try:
            pose = np.loadtxt(self.root / r["pose"]).reshape(4, 4)
        except ValueError:
            raise InputError(f"Dataset {self.root}: pose of frame {r['frame']} is not a 4x4 matrix.") from None
        d = decode_depth(depth)
        # depth is stored for the whole frame (exact geometry), but pixels behind the field stop are
        # black in the image: no network can see their depth, so they are not "valid" for learning or scoring
        seen = bgr.max(axis=2) > 0
        return {
            "rgb": np.ascontiguousarray(bgr[..., ::-1]),
            "depth_mm": d,
            "valid": (d > 0) & seen,
            "pose": pose,
            "frame": int(r["frame"]),
            "path": r["path"],
            "scenario": r["scenario"],
        }

    def __getitem__(self, i: int) -> dict:
        return self.load(i)


def _raise(message: str):
    raise InputError(message)


def parse_size(text: str) -> tuple:
    """'256x320' -> (256, 320) as (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"Size must look like 256x320 (height x width), got '{text}'.") from None
    if h < 16 or w < 16:
        raise InputError(f"Size {text} is too small.")
    if h > MAX_FRAME_SIDE or w > MAX_FRAME_SIDE:
        raise InputError(f"Size {text} is too large: at most {MAX_FRAME_SIDE} pixels a side.")
    return h, w


MAX_FRAME_SIDE = 8192


def default_camera(height: int = 256, width: int = 320, horizontal_fov_deg: float = 80.0) -> CameraIntrinsics:
    """The synthetic endoscope: square pixels, centred principal point, wide angle."""
    f = (width / 2.0) / np.tan(np.radians(horizontal_fov_deg) / 2.0)
    return CameraIntrinsics(float(f), float(f), (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))


def render_dataset(
    scenario_names: Sequence[str],
    out_dir: str | Path,
    frames: int,
    paths: int,
    seed: int = 0,
    camera: CameraIntrinsics | None = None,
    val_every: int = 5,
    data_dir=None,
    overwrite: bool = False,
    progress=None,
    cancel: CancelToken | None = None,
    scenarios: dict | None = None,
) -> Path:
    """Render ``frames`` frames along ``paths`` smooth camera paths cycling over the scenarios.

    Every ``val_every``-th path (per scenario) is marked ``val``. Frames stream to disk.
    """
    from SurgicalDepthLib.synthetic.camera_paths import PosePlanner, trajectory
    from SurgicalDepthLib.synthetic.renderer import SurfaceRenderer
    from SurgicalDepthLib.synthetic.catalog import load_scenario

    if frames < 1 or paths < 1 or paths > frames:
        raise InputError(f"Need 1 <= paths <= frames, got {paths} path(s) for {frames} frame(s).")
    if not scenario_names:
        raise InputError("Name at least one scenario.")
    camera = camera or default_camera()
    p = Progress.of(progress, cancel)
    scenarios = dict(scenarios or {})
    for name in scenario_names:
        if name not in scenarios:
            p.step(0.0, f"building scenario {name}")
            scenarios[name] = load_scenario(name, data_dir)
    renderers = {n: SurfaceRenderer(s, camera) for n, s in scenarios.items()}
    planners = {n: PosePlanner(s, camera, renderers[n]) for n, s in scenarios.items()}
    counts = [frames // paths + (1 if i < frames % paths else 0) for i in range(paths)]
    done = 0
    with DatasetWriter(out_dir, camera, overwrite, {"seed": int(seed), "scenarios": list(scenario_names)}) as writer:
        for i, n in enumerate(counts):
            name = scenario_names[i % len(scenario_names)]
            per_scenario_index = i // len(scenario_names)
            split = "val" if val_every and per_scenario_index % val_every == val_every - 1 else "train"
            path_seed = seed * 100003 + i
            writer.begin_path(f"{name}-{per_scenario_index:03d}", name, path_seed, split)
            poses = trajectory(scenarios[name], n, seed=path_seed, camera=camera, planner=planners[name])
            for j, pose in enumerate(poses):
                writer.add(renderers[name].render(pose, seed=path_seed * 1000 + j))
                done += 1
                p.step(done / frames, f"{name} path {i + 1}/{paths}")
    return Path(out_dir)
