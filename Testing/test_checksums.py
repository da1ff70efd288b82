"""Trust-on-first-use records (SurgicalAICore.checksums): sha256sum's own format, one line on a mismatch."""
import shutil
import subprocess

import pytest

from SurgicalAICore.checksums import FILE_RECORD_SUFFIX, RECORD_NAME, verify_or_record, verify_or_record_file
from SurgicalAICore.errors import ModelError


def _folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(bytes(range(256)) * 10)
    (folder / "sub" / "b.json").write_text('{"x": 1}')
    return folder


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_record_is_checked_by_sha256sum_itself(tmp_path):
    folder = _folder(tmp_path)
    assert verify_or_record(folder, [folder / "a.bin", folder / "sub" / "b.json"]) == "recorded"
    run = subprocess.run(["sha256sum", "-c", RECORD_NAME], cwd=folder, capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "a.bin: OK" in run.stdout and "sub/b.json: OK" in run.stdout
    assert oct((folder / RECORD_NAME).stat().st_mode & 0o777) != "0o600"  # published with normal permissions
    assert verify_or_record(folder, [folder / "a.bin"]) == "verified"


def test_changed_or_unrecorded_file_is_one_line(tmp_path):
    folder = _folder(tmp_path)
    verify_or_record(folder, [folder / "a.bin"])
    (folder / "a.bin").write_bytes(b"changed")
    with pytest.raises(ModelError, match="does not match its SHA-256") as info:
        verify_or_record(folder, [folder / "a.bin"])
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match=r"is not in surgicalai\.sha256"):
        verify_or_record(folder, [folder / "sub" / "b.json"])


def test_single_file_record_lies_beside_it_and_leaves_other_files_alone(tmp_path):
    folder = _folder(tmp_path)
    assert verify_or_record_file(folder / "a.bin") == "recorded"
    assert (folder / ("a.bin" + FILE_RECORD_SUFFIX)).is_file() and not (folder / RECORD_NAME).exists()
    assert verify_or_record_file(folder / "sub" / "b.json") == "recorded"  # a second model file: its own record
    assert verify_or_record_file(folder / "a.bin") == "verified"
    (folder / "a.bin").write_bytes(b"swapped")
    with pytest.raises(ModelError, match="SHA-256"):
        verify_or_record_file(folder / "a.bin")


def test_read_only_folder_is_used_unrecorded(tmp_path, monkeypatch):
    folder = _folder(tmp_path)

    def refuse(*_args, **_kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", refuse)  # what a read-only folder does, also when run as root
    assert verify_or_record(folder, [folder / "a.bin"]) == "unrecorded"
    assert not list(folder.glob("*.sha256")) and not list(folder.glob(".*"))
