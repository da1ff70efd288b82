"""Depth-training augmentation as small random transforms, each with its own probability.

The shape follows MONAI's ``Randomizable``/``Compose``: every transform draws its parameters in
``randomize(rng)`` and applies them in ``__call__(sample)``, so no two transforms share a scope
(the motion-blur bug fixed in 7bd6ad9 came from one long function that did). A sample is a dict
``{"image": HxWx3 float32 in 0..1, "depth": HxW float32 mm, "valid": HxW bool}``.

Geometry transforms (crop, flips) keep depth values exact (no interpolation). Appearance transforms
imitate real endoscopy that plain renders miss (sim-to-real): red, saturated mucosa; over- and
under-exposure; a stronger light fall-off with depth; wet specular highlights; blood; smoke haze;
lens vignetting and chromatic aberration; defocus and motion blur; signal-dependent sensor noise;
JPEG compression; and the field stop of a rod lens as a circle or, for a 16:9 video squeezed into the
network's 5:4 input, an ellipse, with a soft edge. Pixels outside the field stop leave the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


class RandTransform:
    """Base: ``prob`` of applying; ``randomize`` draws, ``apply`` changes the sample."""

    prob = 1.0

    def __init__(self, prob: float | None = None):
        if prob is not None:
            self.prob = float(prob)
        self._do = False

    def randomize(self, rng: np.random.Generator, strength: float = 1.0) -> None:
        self._do = bool(rng.random() < self.prob * strength)
        if self._do:
            self.draw(rng, strength)

    def draw(self, rng: np.random.Generator, strength: float) -> None:
        """Draw this transform's parameters."""

    def __call__(self, sample: dict) -> dict:
        return self.apply(sample) if self._do else sample

    def apply(self, sample: dict) -> dict:
        raise NotImplementedError


class RandCrop(RandTransform):
    """A crop at full pixel scale (apparent size still tells distance); always applied."""

    def __init__(self, size: tuple[int, int]):
        super().__init__(1.0)
        self.size = size

    def randomize(self, rng, strength=1.0):
        self._rng = rng
        self._do = True

    def apply(self, s):
        h, w = s["depth"].shape
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        y0, x0 = int(self._rng.integers(0, h - ch + 1)), int(self._rng.integers(0, w - cw + 1))
        return {k: np.ascontiguousarray(s[k][y0 : y0 + ch, x0 : x0 + cw]) for k in ("image", "depth", "valid")}


class RandFlip(RandTransform):
    def __init__(self, axis: int, prob: float):
        super().__init__(prob)
        self.axis = axis

    def randomize(self, rng, strength=1.0):  # geometry: not scaled by the appearance strength
        self._do = bool(rng.random() < self.prob)

    def apply(self, s):
        return {k: np.ascontiguousarray(np.flip(s[k], self.axis)) for k in ("image", "depth", "valid")}


class RandIntrinsics(RandTransform):
    """Other intrinsics: a sub-window stretched back to full size, by its own factor per axis.

    Resampling an image is exactly a change of focal length (fx, fy scale with it) while z-depth per
    pixel stays; depth and validity are resampled nearest so no depth is invented at edges. Squeezed
    16:9 video (fy > fx after resizing) and narrower lenses are covered this way.
    """

    prob = 0.4

    def randomize(self, rng, strength=1.0):  # geometry: not scaled by the appearance strength
        self._do = bool(rng.random() < self.prob)
        if self._do:
            self.sx, self.sy = float(rng.uniform(1.0, 1.5)), float(rng.uniform(1.0, 1.6))
            self.x, self.y = float(rng.random()), float(rng.random())

    def apply(self, s):
        h, w = s["depth"].shape
        ch, cw = max(round(h / self.sy), 8), max(round(w / self.sx), 8)
        y0, x0 = int(self.y * (h - ch)), int(self.x * (w - cw))
        window = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        return {
            "image": cv2.resize(s["image"][window], (w, h), interpolation=cv2.INTER_LINEAR),
            "depth": cv2.resize(s["depth"][window], (w, h), interpolation=cv2.INTER_NEAREST),
            "valid": cv2.resize(s["valid"][window].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0,
        }


class RandTissueTint(RandTransform):
    """Channel gains towards red, saturated mucosa (renders are pale; real tissue absorbs blue and green)."""

    prob = 0.5

    def draw(self, rng, k):
        self.gains = np.array([rng.uniform(0.95, 1.25), rng.uniform(0.45, 0.85), rng.uniform(0.3, 0.75)], np.float32)

    def apply(self, s):
        return {**s, "image": s["image"] * self.gains}


class RandColour(RandTransform):
    """White balance, brightness, contrast/saturation and gamma, as camera settings vary."""

    prob = 1.0

    def draw(self, rng, k):
        self.gain = np.exp(rng.normal(0, 0.12 * k, 3)).astype(np.float32) * np.float32(np.exp(rng.normal(0, 0.3 * k)))
        self.saturation = np.float32(np.exp(rng.normal(0, 0.25 * k)))
        self.gamma = np.float32(np.exp(rng.normal(0, 0.2 * k)))

    def apply(self, s):
        img = s["image"] * self.gain
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * self.saturation
        return {**s, "image": np.clip(img, 0, 1) ** self.gamma}


class RandExposure(RandTransform):
    """Over- or under-exposure: a gain that saturates the near tissue or sinks the far one in noise."""

    prob = 0.3

    def draw(self, rng, k):
        self.gain = np.float32(np.exp(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9)))

    def apply(self, s):
        return {**s, "image": np.clip(s["image"] * self.gain, 0, 1)}


class RandDepthFalloff(RandTransform):
    """Extra light fall-off with depth, (d / median d)^-beta: real scope light is often more concentrated."""

    prob = 0.3

    def draw(self, rng, k):
        self.beta = float(rng.uniform(0.2, 0.8))

    def apply(self, s):
        d, v = s["depth"], s["valid"] & (s["depth"] > 0)
        if not v.any():
            return s
        rel = np.where(v, d / np.median(d[v]), 1.0).astype(np.float32)
        return {**s, "image": np.clip(s["image"] * (rel**-self.beta)[..., None], 0, 1)}


class RandSpecular(RandTransform):
    """Saturated highlights of wet mucosa that carry no depth change."""

    prob = 0.5

    def draw(self, rng, k):
        self.blobs = [
            (rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(1.0, 8.0), rng.uniform(1.0, 8.0), rng.uniform(0.6, 1.5))
            for _ in range(int(rng.integers(1, 8)))
        ]

    def apply(self, s):
        img = s["image"]
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        add = np.zeros((h, w), np.float32)
        for cy, cx, ry, rx, a in self.blobs:
            add += a * np.exp(-(((yy - cy * h) / ry) ** 2 + ((xx - cx * w) / rx) ** 2))
        return {**s, "image": img + add[..., None]}


class RandBlood(RandTransform):
    """A dark red patch of blood or fluid."""

    prob = 0.2

    def draw(self, rng, k):
        self.where = (rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(15, 60), rng.uniform(0.3, 0.8))

    def apply(self, s):
        img = s["image"]
        h, w = img.shape[:2]
        cy, cx, r, a = self.where
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        m = (np.exp(-((yy - cy * h) ** 2 + (xx - cx * w) ** 2) / (2 * r * r)) * a)[..., None]
        return {**s, "image": img * (1 - m) + m * np.array([0.35, 0.02, 0.02], np.float32) * img.mean()}


class RandSmoke(RandTransform):
    """Surgical smoke: a smooth, greyish veil that lowers contrast."""

    prob = 0.15

    def draw(self, rng, k):
        self.seed = int(rng.integers(0, 2**31))
        self.amount = float(rng.uniform(0.1, 0.45))

    def apply(self, s):
        img = s["image"]
        h, w = img.shape[:2]
        noise = np.random.default_rng(self.seed).random((max(h // 32, 2), max(w // 32, 2))).astype(np.float32)
        veil = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * self.amount
        return {**s, "image": img * (1 - veil[..., None]) + veil[..., None] * 0.8}


class RandVignetting(RandTransform):
    prob = 0.3

    def draw(self, rng, k):
        self.amount = float(rng.uniform(0.1, 0.6))

    def apply(self, s):
        img = s["image"]
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
        return {**s, "image": img * (1 - self.amount * r2)[..., None]}


class RandChromaticAberration(RandTransform):
    """Lateral chromatic aberration: red and blue magnified slightly differently about the centre."""

    prob = 0.3

    def draw(self, rng, k):
        self.scale = float(rng.uniform(0.002, 0.012))

    def apply(self, s):
        img = s["image"].copy()
        h, w = img.shape[:2]
        for channel, sign in ((0, 1.0), (2, -1.0)):
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, 1.0 + sign * self.scale)
            img[..., channel] = cv2.warpAffine(
                np.ascontiguousarray(img[..., channel]), m, (w, h), borderMode=cv2.BORDER_REFLECT
            )
        return {**s, "image": img}


class RandBlur(RandTransform):
    prob = 0.4

    def draw(self, rng, k):
        self.sigma = float(rng.uniform(0.5, 2.0))

    def apply(self, s):
        return {**s, "image": cv2.GaussianBlur(s["image"], (0, 0), self.sigma)}


class RandMotionBlur(RandTransform):
    """Blur along a random direction over 3-8 pixels, as a moving endoscope smears the image."""

    prob = 0.2

    def draw(self, rng, k):
        size = int(rng.integers(3, 9))
        kernel = np.zeros((size, size), np.float32)
        kernel[size // 2] = 1.0 / size
        rot = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (size, size))
        self.kernel = kernel / max(float(kernel.sum()), 1e-6)

    def apply(self, s):
        return {**s, "image": cv2.filter2D(s["image"], -1, self.kernel)}


class RandSensorNoise(RandTransform):
    """Shot noise (grows with the signal) plus read noise."""

    prob = 0.8

    def draw(self, rng, k):
        self.read = float(rng.uniform(0.0, 0.03 * k))
        self.shot = float(rng.uniform(0.0, 0.04 * k))
        self.seed = int(rng.integers(0, 2**31))

    def apply(self, s):
        img = np.clip(s["image"], 0, None)
        sigma = np.sqrt(self.read**2 + self.shot**2 * img)
        noise = np.random.default_rng(self.seed).standard_normal(img.shape).astype(np.float32)
        return {**s, "image": img + sigma * noise}


class RandJpeg(RandTransform):
    """Compression artefacts of recorded surgical video."""

    prob = 0.3

    def draw(self, rng, k):
        self.quality = int(rng.integers(25, 90))

    def apply(self, s):
        img8 = (np.clip(s["image"], 0, 1) * 255 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img8, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return s
        return {**s, "image": cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0}


class RandFieldStop(RandTransform):
    """The rod lens' dark border: a circle or an ellipse (16:9 video squeezed to 5:4), soft-edged."""

    prob = 0.4

    def draw(self, rng, k):
        self.radius = float(rng.uniform(0.42, 0.85))
        self.aspect = float(rng.choice([1.0, rng.uniform(0.6, 1.0)]))  # vertical / horizontal semi-axis
        self.centre = (float(rng.normal(0, 0.03)), float(rng.normal(0, 0.03)))
        self.edge = float(rng.uniform(0.005, 0.04))

    def apply(self, s):
        h, w = s["depth"].shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        half = np.hypot(h / 2, w / 2)
        dx = (xx - (w - 1) / 2 - self.centre[0] * w) / half
        dy = (yy - (h - 1) / 2 - self.centre[1] * h) / (half * self.aspect)
        soft = np.clip((self.radius - np.hypot(dx, dy)) / self.edge + 0.5, 0, 1)
        inside = soft > 0.5
        if inside.mean() < 0.3:
            return s
        return {"image": s["image"] * soft[..., None], "depth": s["depth"], "valid": s["valid"] & inside}


def default_transforms(crop: tuple[int, int]) -> list[RandTransform]:
    return [
        RandCrop(crop),
        RandFlip(1, 0.5),
        RandFlip(0, 0.3),
        RandIntrinsics(),
        RandTissueTint(),
        RandColour(),
        RandExposure(),
        RandDepthFalloff(),
        RandSpecular(),
        RandBlood(),
        RandSmoke(),
        RandVignetting(),
        RandChromaticAberration(),
        RandBlur(),
        RandMotionBlur(),
        RandSensorNoise(),
        RandJpeg(),
        RandFieldStop(),
    ]


class Compose:
    """Apply transforms in order; each draws its own parameters from one generator."""

    def __init__(self, transforms: Sequence[RandTransform]):
        self.transforms = list(transforms)

    def __call__(self, sample: dict, rng: np.random.Generator, strength: float = 1.0) -> dict:
        for t in self.transforms:
            if strength <= 0 and not isinstance(t, RandCrop):
                continue
            t.randomize(rng, strength)
            sample = t(sample)
        return sample


def augment_sample(
    rgb: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    crop: tuple[int, int],
    strength: float = 1.0,
):
    """One training sample: (rgb float32 HxWx3 in 0..1, depth, valid) after crop and appearance changes.

    ``strength`` (0-1) scales the probabilities and amplitudes of the appearance changes; 0 = the crop only.
    """
    sample = {
        "image": np.asarray(rgb, np.float32) / 255.0,
        "depth": np.asarray(depth, np.float32),
        "valid": np.asarray(valid, bool),
    }
    out = Compose(default_transforms(crop))(sample, rng, strength)
    return np.clip(out["image"], 0, 1).astype(np.float32), out["depth"], out["valid"]
