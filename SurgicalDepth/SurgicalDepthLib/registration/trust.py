"""Three-state confidence of a registered frame (trusted / uncertain / lost), calibrated on frames with known TRE.

A fit statistic alone does not tell a right pose from a wrong one: with depth that is ~10 % off in a smooth,
systematic way a slid pose fits as tightly as the true one. The state therefore combines the fit (inlier RMS,
inlier share), the conditioning of the point-to-plane system (a cloud that can slide along a smooth surface or
a tube pins the pose only weakly), the scale a similarity fit needed, and how far the fit moved the cloud away
from where the motion model expected it. The limits are not guessed: :func:`calibrate` picks them on synthetic
frames whose true pose is known (``benchmarks/calibrate_trust.py``: true, noisy and predicted depth;
laparoscopy, sinus, bronchoscopy) so that no calibration frame marked trusted has a TRE above
``TRUSTED_TRE_MM`` minus a margin, and none marked uncertain one above ``UNCERTAIN_TRE_MM`` minus a margin.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from SurgicalDepthLib.registration.icp import ICPResult, rotation_angle_deg

TRUSTED, UNCERTAIN, LOST = "trusted", "uncertain", "lost"
STATES = (TRUSTED, UNCERTAIN, LOST)
TRUSTED_TRE_MM = 5.0      # a trusted frame must be within this of the truth
UNCERTAIN_TRE_MM = 20.0   # a frame shown at all (uncertain) must be within this


@dataclass
class TrustFeatures:
    rms_mm: float            # inlier point-to-plane RMS
    inlier_fraction: float
    conditioning: float      # smallest / largest eigenvalue of the normalised normal equations
    log_scale: float         # |log| of the similarity scale (0 for a rigid fit)
    moved_mm: float          # displacement of the cloud centre from the start (motion-model) pose
    turned_deg: float        # rotation from the start pose
    # how far re-fits started a few mm / degrees around the fit end from it (RMS over the cloud, worst re-fit);
    # NaN: not measured (it is measured only for fits whose one failing limit is the conditioning)
    spread_mm: float = math.nan
    # the inlier RMS as a share of the viewing distance (median camera-to-point distance after the fit's scale):
    # depth noise grows with distance, so a residual that is right at 60 mm in the abdomen is a mismatch at 15 mm
    # in an airway; NaN: not measured
    residual_ratio: float = math.nan

    def as_dict(self) -> dict:
        """The features as floats; the optional ones only where they were measured (JSON has no NaN)."""
        return {k: float(v) for k, v in asdict(self).items()
                if k not in ("spread_mm", "residual_ratio") or math.isfinite(v)}


@dataclass(frozen=True)
class TrustLimits:
    max_rms_mm: float
    min_inlier_fraction: float
    min_conditioning: float
    max_log_scale: float
    max_moved_mm: float
    max_turned_deg: float
    # a narrow view (conditioning below the limit) is still pinned when re-fits from nearby starts return to
    # within this of the fit; -inf: conditioning alone decides
    max_spread_mm: float = -math.inf
    max_residual_ratio: float = math.inf

    def failures(self, f: TrustFeatures) -> list[str]:
        out = []
        if not math.isfinite(f.rms_mm) or f.rms_mm > self.max_rms_mm:
            out.append(f"residual {f.rms_mm:.2f} mm > {self.max_rms_mm:.2f} mm")
        elif f.residual_ratio > self.max_residual_ratio:
            out.append(f"residual {f.rms_mm:.2f} mm is {100 * f.residual_ratio:.1f}% of the viewing distance "
                       f"(> {100 * self.max_residual_ratio:.1f}%)")
        if f.inlier_fraction < self.min_inlier_fraction:
            out.append(f"only {100 * f.inlier_fraction:.0f}% of the points match the surface")
        if f.conditioning < self.min_conditioning and not f.spread_mm <= self.max_spread_mm:
            spread = (f" (re-fits from nearby starts end {f.spread_mm:.1f} mm away)"
                      if math.isfinite(f.spread_mm) else "")
            out.append(f"the surface does not pin the pose (the cloud can slide along it){spread}")
        if f.log_scale > self.max_log_scale:
            out.append(f"the depth needed a scale of {math.exp(f.log_scale):.2f}")
        if f.moved_mm > self.max_moved_mm or f.turned_deg > self.max_turned_deg:
            out.append(f"the fit moved {f.moved_mm:.1f} mm / {f.turned_deg:.1f} deg from where the motion "
                       "model expected the camera")
        return out


@dataclass(frozen=True)
class TrustCalibration:
    trusted: TrustLimits
    uncertain: TrustLimits
    source: str = ""


# Written by ``python benchmarks/calibrate_trust.py`` (results_trust_calibration.json; see
# docs/BENCHMARKS_registration.md): fitted on 1 728 registrations (3 scenarios x true / noisy / predicted depth x
# 8 camera paths x 6 frames x 4 starts) so that none marked trusted has TRE > 4 mm nor uncertain > 15 mm, then
# held within TRUSTED_CAPS / UNCERTAIN_CAPS. An infinite limit is one the data did not need. Judged path by path
# with limits fitted on the other seven, no trusted frame is beyond 5 mm (worst 4.97 mm); the earlier limits, fitted
# on two paths without the residual ratio, trusted a bronchoscopy fit 25.7 mm off on a new path (residual 0.23 mm,
# but 4 % of its 5.5 mm viewing distance).
CALIBRATION = TrustCalibration(
    trusted=TrustLimits(max_rms_mm=math.inf, min_inlier_fraction=0.99975, min_conditioning=0.01, max_log_scale=0.3,
                        max_moved_mm=8.0, max_turned_deg=8.0, max_spread_mm=1.0, max_residual_ratio=0.013368),
    uncertain=TrustLimits(max_rms_mm=1.2368, min_inlier_fraction=-math.inf, min_conditioning=-math.inf,
                          max_log_scale=0.39, max_moved_mm=9.6608, max_turned_deg=12.0, max_residual_ratio=0.040505),
    source="benchmarks/results_trust_calibration.json, 2026-12-04T16:52+00:00")


def features(result: ICPResult, start: np.ndarray, cloud: np.ndarray) -> TrustFeatures:
    """Trust features of an ICP ``result`` that started at ``start`` (the motion model's prediction)."""
    centre = np.asarray(cloud, float).mean(axis=0)
    m, s = np.asarray(result.matrix, float), np.asarray(start, float)
    moved = float(np.linalg.norm((m[:3, :3] @ centre + m[:3, 3]) - (s[:3, :3] @ centre + s[:3, 3])))
    rm = m[:3, :3] / np.cbrt(np.linalg.det(m[:3, :3]))
    rs = s[:3, :3] / np.cbrt(np.linalg.det(s[:3, :3]))
    distance = float(np.median(np.linalg.norm(np.asarray(cloud, float), axis=1))) * float(result.scale)
    ratio = float(result.rms_mm) / distance if distance > 0 else math.nan
    return TrustFeatures(float(result.rms_mm), float(result.inlier_fraction), float(result.conditioning),
                         abs(math.log(max(result.scale, 1e-9))), moved, rotation_angle_deg(rm @ rs.T),
                         residual_ratio=ratio)


def only_conditioning_fails(f: TrustFeatures, calibration: TrustCalibration | None = None) -> bool:
    """True when the trusted limits fail on the conditioning alone, and a re-fit spread could waive it."""
    limits = (calibration or CALIBRATION).trusted
    if not math.isfinite(limits.max_spread_mm) or math.isfinite(f.spread_mm):
        return False
    return len(limits.failures(f)) == 1 and f.conditioning < limits.min_conditioning


def classify(f: TrustFeatures, calibration: TrustCalibration | None = None) -> tuple[str, str]:
    """(state, reason): ``trusted`` when every trusted limit holds, ``uncertain`` when the looser ones hold,
    else ``lost``; the reason names what failed ('' when trusted)."""
    cal = calibration or CALIBRATION
    strict = cal.trusted.failures(f)
    if not strict:
        return TRUSTED, ""
    loose = cal.uncertain.failures(f)
    if not loose:
        return UNCERTAIN, "; ".join(strict)
    return LOST, "; ".join(loose)


def rank(state: str) -> int:
    return {TRUSTED: 2, UNCERTAIN: 1, LOST: 0}[state]


# ---- calibration ----

_FIELDS = ("rms_mm", "inlier_fraction", "conditioning", "log_scale", "moved_mm", "turned_deg", "residual_ratio")
# limits that are maxima (others are minima)
_UPPER = {"rms_mm", "log_scale", "moved_mm", "turned_deg", "residual_ratio"}


def _matrix(rows: list[dict]) -> np.ndarray:
    x = np.array([[r.get(k, math.nan) for k in _FIELDS] for r in rows], float)
    return np.nan_to_num(x, nan=np.inf, posinf=np.inf)


def _fit_limits(x: np.ndarray, tre: np.ndarray, max_tre: float, n_grid: int = 40) -> TrustLimits:
    """Limits that accept as many rows as possible while accepting none with ``tre`` > ``max_tre``.

    Greedy, on per-feature quantile grids (an exhaustive search over six features is too slow): from limits
    that accept everything, tighten the one limit that drops the most bad rows per good row lost until no bad
    row is left, then loosen any limit that can be loosened without letting a bad row back in."""
    good = tre <= max_tre
    grids = []
    for j, name in enumerate(_FIELDS):
        col = x[:, j]
        finite = col[np.isfinite(col)]
        grid = np.unique(np.quantile(finite, np.linspace(0, 1, n_grid + 1))) if len(finite) else np.zeros(1)
        # tight -> loose, from a limit no row passes to one every row passes
        if name in _UPPER:
            grid = np.concatenate([[-np.inf], grid, [np.inf]])        # ascending maxima
        else:
            grid = np.concatenate([[np.inf], grid[::-1], [-np.inf]])  # descending minima
        grids.append(grid)

    def accepted(p):
        ok = np.ones(len(x), bool)
        for j, name in enumerate(_FIELDS):
            v = grids[j][p[j]]
            ok &= (x[:, j] <= v) if name in _UPPER else (x[:, j] >= v)
        return ok

    pos = [len(g) - 1 for g in grids]
    ok = accepted(pos)
    while (ok & ~good).any():
        best = None
        for j in range(len(_FIELDS)):
            for k in range(pos[j]):
                trial = pos.copy()
                trial[j] = k
                t = accepted(trial)
                bad_gone = int((ok & ~good & ~t).sum())
                if bad_gone:
                    score = bad_gone / (int((ok & good & ~t).sum()) + 1)
                    if best is None or score > best[0]:
                        best = (score, trial)
        if best is None:  # cannot happen: the first grid value of each limit rejects every row
            break
        pos = best[1]
        ok = accepted(pos)
    improved = True
    while improved:
        improved = False
        for j in range(len(_FIELDS)):
            for k in range(len(grids[j]) - 1, pos[j], -1):
                trial = pos.copy()
                trial[j] = k
                t = accepted(trial)
                if not (t & ~good).any() and t.sum() > ok.sum():
                    pos, ok, improved = trial, t, True
                    break
    vals = {name: float(grids[j][pos[j]]) for j, name in enumerate(_FIELDS)}
    return TrustLimits(max_rms_mm=vals["rms_mm"], min_inlier_fraction=vals["inlier_fraction"],
                       min_conditioning=vals["conditioning"], max_log_scale=vals["log_scale"],
                       max_moved_mm=vals["moved_mm"], max_turned_deg=vals["turned_deg"],
                       max_residual_ratio=vals["residual_ratio"])


# Physical bounds the data-fitted limits may not exceed (a few dozen frames per scenario do not show every way
# a fit fails): the motion model allows 8 mm / 8 deg per frame, a fit that needed the ICP's scale bound
# (log 1.5 = 0.405) did not find the scale, and a cloud in a tube (conditioning < 0.01) can slide along it.
TRUSTED_CAPS = {"max_moved_mm": 8.0, "max_turned_deg": 8.0, "max_log_scale": 0.3, "min_conditioning": 0.01}
# Not fitted (the calibration rows of narrow views are few): a physical bound. In the offline check on held-out
# paths (docs/BENCHMARKS_registration.md) re-fits of right fits down a pinned sinus passage stayed within 0.3 mm,
# those in a bronchoscopy tube, where the start and not the surface had pinned the pose, spread 5-16 mm.
PINNED_SPREAD_MM = 1.0
UNCERTAIN_CAPS = {"max_moved_mm": 12.0, "max_turned_deg": 12.0, "max_log_scale": 0.39}


def _capped(limits: TrustLimits, caps: dict) -> TrustLimits:
    return replace(limits, **{k: (max if k.startswith("min_") else min)(getattr(limits, k), v)
                              for k, v in caps.items()})


def calibrate(rows: list[dict], margin_mm: float = 1.0, uncertain_margin_mm: float = 5.0) -> TrustCalibration:
    """Limits from rows holding the :class:`TrustFeatures` fields and the frame's true ``tre_mm``: fitted so
    that no row above ``TRUSTED_TRE_MM - margin_mm`` (``UNCERTAIN_TRE_MM - uncertain_margin_mm``) passes,
    then held within the physical caps."""
    x, tre = _matrix(rows), np.array([r["tre_mm"] for r in rows], float)
    trusted = replace(_capped(_fit_limits(x, tre, TRUSTED_TRE_MM - margin_mm), TRUSTED_CAPS),
                      max_spread_mm=PINNED_SPREAD_MM)
    uncertain = _capped(_fit_limits(x, tre, UNCERTAIN_TRE_MM - uncertain_margin_mm), UNCERTAIN_CAPS)
    # classify() tests the trusted limits first, so each set only has to hold on its own rows
    return TrustCalibration(trusted, uncertain, source=f"{len(rows)} calibration registrations")


def evaluate(rows: list[dict], calibration: TrustCalibration | None = None) -> dict:
    """Share of rows per state and the worst TRE in each state (how the limits do on ``rows``)."""
    states = [classify(TrustFeatures(**{k: r.get(k, math.nan) for k in _FIELDS},
                                     spread_mm=r.get("spread_mm", math.nan)), calibration)[0] for r in rows]
    out = {"n": len(rows)}
    for s in STATES:
        tre = [r["tre_mm"] for r, st in zip(rows, states, strict=False) if st == s]
        out[s] = {"share": len(tre) / max(len(rows), 1), "max_tre_mm": float(max(tre)) if tre else None}
    return out
