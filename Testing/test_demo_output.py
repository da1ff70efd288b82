"""The demo's output folder: a new or empty folder, or an earlier demo's output, never a user's files."""
import pytest

from SurgicalAICore.errors import InputError
from surgicalai.demo.pipeline import MARKER, prepare_output


def test_new_and_empty_folders_are_used(tmp_path):
    prepare_output(tmp_path / "new" / "deeper")
    assert (tmp_path / "new" / "deeper" / MARKER).is_file()
    (tmp_path / "empty").mkdir()
    prepare_output(tmp_path / "empty")
    assert (tmp_path / "empty" / MARKER).is_file()


def test_an_earlier_demo_output_is_replaced(tmp_path):
    prepare_output(tmp_path)
    (tmp_path / "depth" / "frames").mkdir(parents=True)
    (tmp_path / "depth" / "frames" / "0001.npy").write_bytes(b"x")
    (tmp_path / "report.html").write_text("old")
    prepare_output(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


def test_a_folder_with_other_files_is_refused_untouched(tmp_path):
    (tmp_path / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match="not empty"):
        prepare_output(tmp_path)
    assert (tmp_path / "thesis.docx").read_text() == "precious"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        prepare_output(tmp_path / "afile")
