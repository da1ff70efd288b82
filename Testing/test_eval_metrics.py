"""Evaluation metrics against analytic shapes: two balls with a known offset on an anisotropic grid."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

SPACING = (1.0, 1.0, 2.0)  # mm along i, j, k
R = 12.0  # ball radius, mm
OFFSET_K = 3  # voxels along k = 6 mm


def ball(shape, centre_mm, radius, spacing=SPACING):
    k, j, i = np.indices(shape)
    return (
        (i * spacing[0] - centre_mm[0]) ** 2
        + (j * spacing[1] - centre_mm[1]) ** 2
        + (k * spacing[2] - centre_mm[2]) ** 2
    ) <= radius**2


def surface_distance_quantiles(radius, d):
    """Distances from points spread uniformly on one sphere's surface to another sphere of the same radius
    shifted by ``d``: |sqrt(R^2 - 2Rd cos(t) + d^2) - R| with cos(t) uniform in [-1, 1]."""
    c = np.linspace(-1, 1, 200001)
    dist = np.abs(np.sqrt(radius**2 - 2 * radius * d * c + d**2) - radius)
    return float(np.percentile(dist, 95)), float(dist.mean())


def test_two_balls_with_known_offset():
    from SegmentationAILib.evaluation import structure_metrics

    shape = (30, 48, 48)  # k, j, i
    centre = (24.0, 24.0, 28.0)
    d = OFFSET_K * SPACING[2]
    a = ball(shape, centre, R)
    b = ball(shape, (centre[0], centre[1], centre[2] + d), R)
    m = structure_metrics(a, b, SPACING)

    inter, na, nb = np.logical_and(a, b).sum(), a.sum(), b.sum()
    assert m["dice"] == pytest.approx(2 * inter / (na + nb), abs=1e-6)  # counted by hand
    assert m["iou"] == pytest.approx(inter / np.logical_or(a, b).sum(), abs=1e-6)
    # ... and close to the analytic lens volume of two balls
    lens = math.pi * (4 * R + d) * (2 * R - d) ** 2 / 12
    assert m["dice"] == pytest.approx(lens / (4 / 3 * math.pi * R**3), abs=0.03)
    hd95, asd = surface_distance_quantiles(R, d)
    # surfaces are voxelised at 1 x 1 x 2 mm: allow about one voxel step
    assert m["hd95_mm"] == pytest.approx(hd95, abs=1.0)
    assert m["asd_mm"] == pytest.approx(asd, abs=0.75)
    assert m["hd95_mm"] > 4.0  # in mm, not voxels (3 voxels along k would read as 3)
    voxel_ml = np.prod(SPACING) / 1000
    assert m["volume_ref_ml"] == pytest.approx(nb * voxel_ml)
    assert m["volume_diff_ml"] == pytest.approx((na - nb) * voxel_ml)


def test_offset_along_the_fine_axis_gives_smaller_distances():
    """Same voxel offset along i (1 mm) instead of k (2 mm): half the distance, so spacing order matters."""
    from SegmentationAILib.evaluation import structure_metrics

    shape = (30, 48, 48)
    a = ball(shape, (20.0, 24.0, 28.0), R)
    b_i = ball(shape, (20.0 + OFFSET_K, 24.0, 28.0), R)
    b_k = ball(shape, (20.0, 24.0, 28.0 + OFFSET_K * 2.0), R)
    hd_i = structure_metrics(a, b_i, SPACING)["hd95_mm"]
    hd_k = structure_metrics(a, b_k, SPACING)["hd95_mm"]
    assert hd_i == pytest.approx(surface_distance_quantiles(R, 3.0)[0], abs=1.0)
    assert hd_k > hd_i + 1.5


def test_identical_empty_and_missing_structures():
    from SegmentationAILib.evaluation import structure_metrics

    a = ball((20, 20, 20), (10, 10, 20), 5)
    same = structure_metrics(a, a, SPACING)
    assert same["dice"] == 1.0 and same["iou"] == 1.0 and same["hd95_mm"] == 0.0 and same["asd_mm"] == 0.0
    empty = np.zeros_like(a)
    both = structure_metrics(empty, empty, SPACING)
    assert all(math.isnan(both[k]) for k in ("dice", "iou", "hd95_mm", "asd_mm"))
    missed = structure_metrics(empty, a, SPACING)
    assert missed["dice"] == 0.0 and missed["iou"] == 0.0 and math.isnan(missed["hd95_mm"])
    assert missed["volume_diff_pct"] == pytest.approx(-100.0)


def make_result():
    from SegmentationAILib.evaluation import EvaluationResult, evaluate_labels

    rows = []
    shape = (30, 48, 48)
    for n, shift in enumerate((0.0, 2.0, 4.0)):
        ref = np.zeros(shape, np.uint8)
        pred = np.zeros(shape, np.uint8)
        ref[ball(shape, (20, 20, 28), 8)] = 1
        pred[ball(shape, (20 + shift, 20, 28), 8)] = 1
        ref[ball(shape, (34, 30, 20), 5)] = 2
        if n != 1:
            pred[ball(shape, (34, 30, 20), 5)] = 2
        rows += evaluate_labels(
            pred, ref, SPACING, {1: "liver", 2: "spleen"}, groups={"organs": ["liver", "spleen"]}, case=f"c{n}"
        )
    return EvaluationResult(rows, ["liver", "spleen", "organs"])


def test_summary_csv_json_and_table_node(tmp_path, scene):
    result = make_result()
    s = result.summary()
    dices = [r["dice"] for r in result.rows if r["structure"] == "liver"]
    assert s["liver"]["dice"]["mean"] == pytest.approx(np.mean(dices))
    assert s["liver"]["dice"]["sd"] == pytest.approx(np.std(dices, ddof=1))
    assert s["spleen"]["dice"]["mean"] == pytest.approx(2 / 3)  # 1, 0, 1
    assert s["spleen"]["hd95_mm"]["n"] == 2  # the miss has no distance
    organs = [r for r in result.rows if r["structure"] == "organs"]
    assert organs[0]["dice"] == 1.0 and organs[1]["dice"] < 1.0

    csv_path = result.write_csv(tmp_path / "eval.csv")
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 9 + 6 and rows[0]["case"] == "c0" and rows[-1]["case"] == "SD"
    assert float(rows[0]["dice"]) == pytest.approx(result.rows[0]["dice"], rel=1e-5)
    data = json.loads(result.write_json(tmp_path / "eval.json").read_text())
    assert data["summary"]["spleen"]["dice"]["n"] == 3 and data["rows"][4]["hd95_mm"] is None

    before = scene.GetNumberOfNodes()
    node = result.to_table_node(scene, "eval")
    assert scene.GetNumberOfNodes() == before + 1
    table = node.GetTable()
    assert table.GetNumberOfRows() == 15 and table.GetColumnByName("dice").GetValue(0) == pytest.approx(
        result.rows[0]["dice"]
    )
    assert table.GetColumnByName("structure").GetValue(1) == "spleen"
    assert "liver" in result.summary_text() and "±" in result.summary_text()


def test_bad_output_and_bad_shapes(tmp_path):
    from SurgicalAICore.errors import InputError
    from SegmentationAILib.evaluation import evaluate_labels, structure_metrics

    result = make_result()
    with pytest.raises(InputError, match="does not exist"):
        result.write_csv(tmp_path / "missing" / "eval.csv")
    with pytest.raises(InputError, match="same grid"):
        structure_metrics(np.zeros((3, 3, 3), bool), np.zeros((3, 3, 4), bool), SPACING)
    with pytest.raises(InputError, match="unknown structure"):
        evaluate_labels(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), SPACING, {1: "a"}, groups={"g": ["b"]})


def test_evaluate_segmentation_nodes_in_the_scene(scene):
    from SegmentationAILib.evaluation import evaluate_segmentation_nodes
    from SurgicalAICore.mrml.segmentations import add_segmentation_to_scene, new_segmentation_node

    shape = (30, 48, 48)
    ijk_to_ras = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    ref = np.zeros(shape, np.uint8)
    ref[ball(shape, (20, 20, 28), 8)] = 1
    pred = np.zeros(shape, np.uint8)
    pred[ball(shape, (22, 20, 28), 8)] = 1
    labels = [{"value": 1, "name": "liver", "color": [1.0, 0.0, 0.0]}]
    ref_node = add_segmentation_to_scene(scene, new_segmentation_node(ref, ijk_to_ras, labels, name="manual"))
    pred_node = add_segmentation_to_scene(scene, new_segmentation_node(pred, ijk_to_ras, labels, name="model"))
    result = evaluate_segmentation_nodes(scene, pred_node, ref_node)
    inter = np.logical_and(ref, pred).sum()
    assert result.rows[0]["dice"] == pytest.approx(2 * inter / (ref.sum() + pred.sum()), abs=1e-6)
    assert result.table_node.GetTable().GetNumberOfRows() == 3
