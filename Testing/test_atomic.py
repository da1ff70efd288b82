"""SurgicalAICore.atomic: the one place outputs are written beside their destination and moved in last."""
import os

import pytest

from SurgicalAICore.atomic import atomic_file, write_atomic


def test_keep_name_gives_the_writer_the_final_name_and_leaves_nothing_else(tmp_path):
    out = tmp_path / "scene.mrb"
    with atomic_file(out, keep_name=True) as tmp:
        assert tmp.name == "scene.mrb" and tmp.parent.parent == tmp_path and tmp.parent.name.startswith(".")
        tmp.write_text("bundle")
    assert out.read_text() == "bundle" and sorted(p.name for p in tmp_path.iterdir()) == ["scene.mrb"]
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "last.pt"
    out.write_text("old")
    for keep_name in (False, True):
        with pytest.raises(RuntimeError), atomic_file(out, ".pt", keep_name=keep_name) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
        assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    write_atomic(out, lambda tmp: tmp.write_text("new"))
    assert out.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
