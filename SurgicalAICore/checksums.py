"""Trust on first use for model files made elsewhere (nnU-Net folders, MONAI bundles, Hugging Face depth
folders, bare TorchScript files), which carry no hash of their own.

The first use records the SHA-256 of every file that is read in a record in ``sha256sum`` format:
``surgicalai.sha256`` inside a model folder, ``<file>.surgicalai.sha256`` beside a single model file;
later uses verify it and refuse a changed file with one line. A user who has published hashes writes
the record themselves to pin them. Project model folders use their own ``weights.sha256``
(:mod:`SurgicalAICore.model_folder`).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from SurgicalAICore.atomic import write_text_atomic
from SurgicalAICore.errors import ModelError
from SurgicalAICore.model_folder import sha256_of

RECORD_NAME = "surgicalai.sha256"
FILE_RECORD_SUFFIX = ".surgicalai.sha256"


def _read_record(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ModelError(f"Checksum file {path} line {n} is not '<sha256>  <file>'.")
        entries[parts[1].strip().lstrip("*")] = parts[0].lower()
    return entries


def _write_record(path: Path, hashes: dict[str, str]) -> bool:
    """Write atomically; False where the folder is read-only (the model is used, unrecorded)."""
    try:
        write_text_atomic(path, "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items())))
    except OSError:
        return False
    return True


def verify_or_record(folder: Path, files: Iterable[Path], record_name: str = RECORD_NAME) -> str:
    """Check ``files`` (inside ``folder``) against the record ``folder / record_name``, or record them on first use.

    Returns ``"verified"``, ``"recorded"`` or ``"unrecorded"`` (first use in a read-only folder)."""
    folder = Path(folder)
    names = sorted({Path(f).resolve().relative_to(folder.resolve()).as_posix() for f in files})
    record = folder / record_name
    if record.is_file():
        expected = _read_record(record)
        for name in names:
            if name not in expected:
                raise ModelError(f"{folder / name} is not in {record.name}; delete that file to trust the folder "
                                 "as it is now, or add the file's SHA-256 to it.")
            actual = sha256_of(folder / name)
            if actual != expected[name]:
                raise ModelError(f"{folder / name} does not match its SHA-256 in {record.name} (expected "
                                 f"{expected[name][:12]}…, got {actual[:12]}…): the file is corrupt or was changed.")
        return "verified"
    hashes = {name: sha256_of(folder / name) for name in names}
    return "recorded" if _write_record(record, hashes) else "unrecorded"


def verify_or_record_file(path: Path) -> str:
    """:func:`verify_or_record` for a single model file; its record lies beside it."""
    path = Path(path)
    return verify_or_record(path.parent, [path], path.name + FILE_RECORD_SUFFIX)
