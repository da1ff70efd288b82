"""``surgicalai train`` and ``surgicalai evaluate`` on case files written here."""
from __future__ import annotations

import csv

import pytest
import SimpleITK as sitk

from test_train_synthetic import make_case


def write_cases(folder, seeds):
    folder.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        case = make_case(s)
        sitk.WriteImage(case.images[0], str(folder / f"pt{s}_ct.nii.gz"))
        sitk.WriteImage(case.labels["label"], str(folder / f"pt{s}_seg.nii.gz"))


TINY = ["--patch", "32", "32", "32", "--unet-channels", "8,16,32", "--strides", "2,2", "--spacing", "2", "2", "2.5",
        "--steps-per-epoch", "3", "--batch-size", "2", "--lr", "0.01", "--no-augment", "--device", "cpu",
        "--threads", "1", "--quiet"]


@pytest.mark.slow
def test_train_then_evaluate_from_the_command_line(tmp_path, capsys):
    from surgicalai.cli import main

    write_cases(tmp_path / "train", range(4))
    write_cases(tmp_path / "val", [4, 5])
    pattern = ["--image", "*_ct.nii.gz", "--label", "*_seg.nii.gz"]
    code = main(["train", str(tmp_path / "train"), *pattern, "--val", str(tmp_path / "val"), "--class", "ball=1",
                 "--class", "box=2", "--epochs", "2", "--largest-component", "ball", "-o", str(tmp_path / "model"),
                 *TINY])
    assert code == 0
    out = capsys.readouterr().out
    assert "model written to" in out
    code = main(["evaluate", str(tmp_path / "model"), str(tmp_path / "val"), *pattern, "--no-tta", "--quiet",
                 "--group", "shapes=ball,box", "-o", str(tmp_path / "eval.csv"), "--json", str(tmp_path / "eval.json")])
    assert code == 0
    text = capsys.readouterr().out
    assert "ball" in text and "shapes" in text
    rows = list(csv.DictReader(open(tmp_path / "eval.csv")))
    means = {r["structure"]: float(r["dice"] or "nan") for r in rows if r["case"] == "MEAN"}
    assert set(means) == {"ball", "box", "shapes"}  # learning itself is tested in test_train_synthetic
    per_case = [r for r in rows if r["case"] in ("pt4", "pt5")]
    assert len(per_case) == 6 and all(0.0 <= float(r["dice"]) <= 1.0 for r in per_case if r["dice"])
    # the command line is recorded in the card
    import json
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert "--class ball=1" in card["training"]["command"] and card["name"] == "model"
    assert card["postprocessing"]["largest_component"] == ["ball"]
    # evaluation may add the post-processing; a class the model lacks is refused in one line
    base = ["evaluate", str(tmp_path / "model"), str(tmp_path / "val"), *pattern, "--no-tta", "--quiet"]
    assert main([*base, "--largest-component", "all"]) == 0
    capsys.readouterr()
    assert main([*base, "--largest-component", "tumour"]) == 2
    assert "tumour" in capsys.readouterr().err


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from surgicalai.cli import main

    write_cases(tmp_path / "train", [0])
    (tmp_path / "exists").mkdir()
    cases = [str(tmp_path / "train"), "--image", "*_ct.nii.gz", "--label", "*_seg.nii.gz"]
    for argv, message in [
        (["train", *cases, "--folds", "3", "-o", str(tmp_path / "m")], "3-fold"),
        (["train", *cases, "-o", str(tmp_path / "exists")], "already exists"),
        (["train", str(tmp_path / "train"), "-o", str(tmp_path / "m")], "--image and --label"),
        (["train", *cases, "--class", "ball", "-o", str(tmp_path / "m")], "NAME=VALUES"),
        (["train", *cases, "--flip-axes", "5", "-o", str(tmp_path / "m")], "--flip-axes"),
        (["train", *cases, "--class", "ball=1", "--largest-component", "tumour", "--epochs", "1", *TINY,
          "-o", str(tmp_path / "m")], "--largest-component"),
        (["evaluate", str(tmp_path / "nomodel"), *cases], "not found"),
        (["evaluate", str(tmp_path / "nomodel"), *cases, "-o", str(tmp_path / "no" / "x.csv")], "does not exist"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists", "train"]


@pytest.mark.slow
def test_kfold_trains_every_fold_and_evaluates_the_ensemble(tmp_path, capsys):
    import json

    from surgicalai.cli import main

    write_cases(tmp_path / "cases", range(4))
    pattern = ["--image", "*_ct.nii.gz", "--label", "*_seg.nii.gz"]
    tiny = [a if a != "6" else "1" for a in TINY]
    assert main(["train", str(tmp_path / "cases"), *pattern, "--folds", "2", "--fold", "all", "--epochs", "1",
                 "-o", str(tmp_path / "cv"), *tiny]) == 0
    vals = [set(json.loads((tmp_path / "cv" / f"fold_{i}" / "model.json").read_text())["training"]["val_cases"])
            for i in range(2)]
    assert not vals[0] & vals[1] and vals[0] | vals[1] == {"pt0", "pt1", "pt2", "pt3"}
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "cv"), str(tmp_path / "cases"), *pattern, "--no-tta", "--quiet"]) == 0
    assert "4 case(s), 2 model(s)" in capsys.readouterr().out
