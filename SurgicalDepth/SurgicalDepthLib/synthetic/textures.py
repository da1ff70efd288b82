"""Procedural tissue appearance, evaluated per pixel at the 3D point the pixel sees.

Solid (3D) textures need no surface parametrisation: the colour of a point depends only on its RAS
position, so a structure looks the same from every camera pose, which is what a depth or
registration network must see. All randomness comes from a ``numpy.random.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class TissueLook:
    """Appearance parameters of one structure (colours linear RGB 0..1, lengths mm)."""

    base_rgb: tuple[float, float, float] = (0.75, 0.35, 0.30)
    mottle_rgb: tuple[float, float, float] = (0.55, 0.20, 0.18)
    mottle_scale_mm: float = 6.0
    mottle_amount: float = 0.35
    vessel_rgb: tuple[float, float, float] = (0.45, 0.05, 0.06)
    vessel_scale_mm: float = 12.0
    vessel_width: float = 0.035
    vessel_amount: float = 0.7
    specular: float = 0.5
    shininess: float = 40.0

    def randomised(self, rng: np.random.Generator, strength: float = 1.0) -> TissueLook:
        """A perturbed copy (domain randomisation); ``strength`` 0 returns the same look."""
        def jitter(rgb, amount):
            rgb = np.asarray(rgb) * np.exp(rng.normal(0.0, amount * strength, 3))
            return tuple(float(c) for c in np.clip(rgb, 0.02, 1.0))

        return replace(
            self,
            base_rgb=jitter(self.base_rgb, 0.15),
            mottle_rgb=jitter(self.mottle_rgb, 0.15),
            vessel_rgb=jitter(self.vessel_rgb, 0.2),
            mottle_scale_mm=float(self.mottle_scale_mm * np.exp(rng.normal(0, 0.3 * strength))),
            vessel_scale_mm=float(self.vessel_scale_mm * np.exp(rng.normal(0, 0.3 * strength))),
            vessel_width=float(np.clip(self.vessel_width * np.exp(rng.normal(0, 0.3 * strength)), 0.01, 0.08)),
            vessel_amount=float(np.clip(self.vessel_amount + rng.normal(0, 0.2 * strength), 0.0, 1.0)),
            specular=float(np.clip(self.specular * np.exp(rng.normal(0, 0.4 * strength)), 0.05, 1.5)),
            shininess=float(np.clip(self.shininess * np.exp(rng.normal(0, 0.4 * strength)), 5.0, 200.0)),
        )


# Rough tissue colours (linear RGB) seen under white endoscope light.
LOOKS = {
    "liver": TissueLook(base_rgb=(0.45, 0.12, 0.09), mottle_rgb=(0.35, 0.08, 0.06), vessel_amount=0.3, specular=0.6),
    "spleen": TissueLook(base_rgb=(0.40, 0.10, 0.14), mottle_rgb=(0.30, 0.07, 0.10), vessel_amount=0.3),
    "stomach": TissueLook(base_rgb=(0.85, 0.55, 0.50), mottle_rgb=(0.75, 0.40, 0.38), vessel_amount=0.8),
    "colon": TissueLook(base_rgb=(0.85, 0.62, 0.52), mottle_rgb=(0.70, 0.45, 0.40), vessel_amount=0.8),
    "small_bowel": TissueLook(base_rgb=(0.88, 0.58, 0.50), mottle_rgb=(0.72, 0.42, 0.38), vessel_amount=0.9),
    "gallbladder": TissueLook(base_rgb=(0.45, 0.55, 0.30), mottle_rgb=(0.35, 0.45, 0.22), vessel_amount=0.5),
    "kidney": TissueLook(base_rgb=(0.55, 0.22, 0.18), mottle_rgb=(0.45, 0.15, 0.12), vessel_amount=0.3),
    "fat": TissueLook(base_rgb=(0.95, 0.80, 0.45), mottle_rgb=(0.85, 0.65, 0.35), vessel_amount=0.6),
    "mucosa": TissueLook(base_rgb=(0.90, 0.50, 0.45), mottle_rgb=(0.75, 0.35, 0.32), mottle_scale_mm=3.0,
                         vessel_scale_mm=6.0, vessel_amount=0.8, specular=0.5, shininess=80.0),
    "airway": TissueLook(base_rgb=(0.92, 0.62, 0.58), mottle_rgb=(0.80, 0.48, 0.45), mottle_scale_mm=3.0,
                         vessel_scale_mm=5.0, vessel_amount=0.6, specular=0.5, shininess=80.0),
    "default": TissueLook(),
}


def look_for(name: str) -> TissueLook:
    key = name.lower()
    for candidate, look in LOOKS.items():
        if candidate in key:
            return look
    return LOOKS["default"]


@dataclass
class ValueNoise3D:
    """Smooth 3D value noise on a periodic random lattice (cheap, vectorised, seeded)."""

    seed: int = 0
    size: int = 64
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self._table = np.random.default_rng(self.seed).random((self.size,) * 3).astype(np.float32)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Noise in [0, 1] at (N, 3) lattice coordinates."""
        p = np.asarray(points, dtype=np.float64)
        base = np.floor(p)
        f = (p - base).astype(np.float32)
        f = f * f * (3.0 - 2.0 * f)  # smoothstep: no lattice creases
        i = base.astype(np.int64) % self.size
        j = (i + 1) % self.size
        t = self._table
        out = np.zeros(len(p), np.float32)
        for dx in (0, 1):
            ix = j[:, 0] if dx else i[:, 0]
            wx = f[:, 0] if dx else 1 - f[:, 0]
            for dy in (0, 1):
                iy = j[:, 1] if dy else i[:, 1]
                wy = f[:, 1] if dy else 1 - f[:, 1]
                for dz in (0, 1):
                    iz = j[:, 2] if dz else i[:, 2]
                    wz = f[:, 2] if dz else 1 - f[:, 2]
                    out += t[ix, iy, iz] * wx * wy * wz
        return out

    def fbm(self, points: np.ndarray, octaves: int = 3) -> np.ndarray:
        total = np.zeros(len(points), np.float32)
        amplitude, norm = 1.0, 0.0
        p = np.asarray(points, dtype=np.float64)
        for octave in range(octaves):
            total += amplitude * self(p * (2.0 ** octave) + 17.0 * octave)
            norm += amplitude
            amplitude *= 0.5
        return total / norm


def albedo(points_ras: np.ndarray, look: TissueLook, noise: ValueNoise3D) -> np.ndarray:
    """(N, 3) linear-RGB albedo of tissue at RAS points: mottled base with a branching vessel net."""
    p = np.asarray(points_ras, dtype=np.float64)
    mottle = noise.fbm(p / look.mottle_scale_mm, octaves=3)
    base = np.asarray(look.base_rgb, np.float32)
    blend = np.clip((mottle - 0.5) * 2.0 * look.mottle_amount + 0.5 * look.mottle_amount, 0.0, 1.0)[:, None]
    rgb = base * (1 - blend) + np.asarray(look.mottle_rgb, np.float32) * blend
    if look.vessel_amount > 0:
        # Vessels: thin ridges where a smooth noise crosses 0.5 (iso-lines branch like capillary nets).
        v = noise.fbm(p / look.vessel_scale_mm + 101.0, octaves=2)
        ridge = np.clip(1.0 - np.abs(v - 0.5) / look.vessel_width, 0.0, 1.0) ** 2
        fine = noise(p / (look.vessel_scale_mm * 0.4) + 53.0)
        ridge = np.maximum(ridge, 0.6 * np.clip(1.0 - np.abs(fine - 0.5) / (look.vessel_width * 0.7), 0, 1) ** 2)
        w = (ridge * look.vessel_amount)[:, None]
        rgb = rgb * (1 - w) + np.asarray(look.vessel_rgb, np.float32) * w
    return rgb.astype(np.float32)
