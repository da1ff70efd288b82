"""Security by default for the web face: loopback binding, an access token off loopback, and a data
folder that confines every path a client names (file browser, uploads, saves).

Qt-free and trame-free so it is unit-tested directly; ``app.py`` wires it into the aiohttp server.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from SurgicalAICore.atomic import write_atomic
from SurgicalAICore.errors import InputError

TOKEN_PARAM = "token"
TOKEN_COOKIE = "surgicalai_token"
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024

# What a client may load or upload; the first bytes are checked too (see ``sniff_type``).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
UPLOAD_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES + FRAME_SUFFIXES


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no expected token means none is required (loopback)."""
    if not expected:
        return True
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def suffix_of(name: str, allowed: tuple[str, ...]) -> str | None:
    lower = name.lower()
    return next((s for s in allowed if lower.endswith(s)), None)


NIFTI_MAGIC = slice(344, 348)  # the NIfTI-1 header's magic field
SIGNATURES = {
    ".nii.gz": lambda h: h.startswith(b"\x1f\x8b"),
    ".nii": lambda h: h[NIFTI_MAGIC] in (b"n+1\x00", b"ni1\x00"),
    ".nrrd": lambda h: h.startswith(b"NRRD"),
    ".mha": lambda h: b"ObjectType" in h[:512] or b"NDims" in h[:512],
    ".png": lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"),
    ".jpg": lambda h: h.startswith(b"\xff\xd8\xff"),
    ".jpeg": lambda h: h.startswith(b"\xff\xd8\xff"),
    ".mp4": lambda h: h[4:8] == b"ftyp",
    ".mov": lambda h: h[4:8] == b"ftyp",
    ".avi": lambda h: h.startswith(b"RIFF") and h[8:12] == b"AVI ",
    ".mkv": lambda h: h.startswith(b"\x1a\x45\xdf\xa3"),
}


def sniff_type(head: bytes, suffix: str) -> bool:
    """Do the first bytes look like the format the name claims? (a renamed file is refused)"""
    check = SIGNATURES.get(suffix)
    return bool(check and check(head))


def safe_upload_name(name: str) -> str:
    """The client's file name reduced to a plain name; any path part is refused, not silently stripped."""
    if not name or "\x00" in name:
        raise InputError("Upload refused: the file has no name.")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise InputError(f"Upload refused: '{name}' is not a plain file name (no folders, no '..').")
    if len(name) > 200:
        raise InputError("Upload refused: the file name is longer than 200 characters.")
    return name


@dataclass(frozen=True)
class DataRoot:
    """The one folder clients may read and write; every client path is relative to it."""

    root: Path
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES

    @classmethod
    def of(cls, folder: str | os.PathLike, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> DataRoot:
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"Data folder {root} does not exist or is not a folder.")
        return cls(root, max_upload_bytes)

    def resolve(self, relative: str, must_exist: bool = True) -> Path:
        """The real path of ``relative`` inside the root; '..', absolute paths and symlinks that lead
        outside are refused (checked on the resolved path, so a link anywhere on the way counts)."""
        if relative is None or "\x00" in str(relative):
            raise InputError("Refused: empty or invalid path.")
        pure = PurePosixPath(str(relative).replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts:
            raise InputError(f"Refused: '{relative}' is outside the data folder.")
        path = (self.root / pure).resolve()
        if not path.is_relative_to(self.root):
            raise InputError(f"Refused: '{relative}' leads outside the data folder.")
        if must_exist and not path.exists():
            raise InputError(f"'{relative}' does not exist in the data folder.")
        return path

    def listing(self, suffixes: tuple[str, ...] = UPLOAD_SUFFIXES, max_depth: int = 3) -> list[dict]:
        """Loadable entries (files of the given types, folders holding DICOM or frames) for the browser."""
        entries: list[dict] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            depth = len(here.relative_to(self.root).parts)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and depth < max_depth)
            for name in sorted(filenames):
                path = here / name
                if name.startswith(".") or not suffix_of(name, suffixes):
                    continue
                if not path.resolve().is_relative_to(self.root):
                    continue  # a link leading outside is not offered
                entries.append({"path": path.relative_to(self.root).as_posix(), "kind": "file"})
            if here != self.root and _looks_like_series(filenames):
                entries.append({"path": here.relative_to(self.root).as_posix(), "kind": "folder"})
        return entries

    def write_upload(self, name: str, content: bytes, suffixes: tuple[str, ...] = UPLOAD_SUFFIXES,
                     folder: str = "uploads") -> Path:
        """Check an upload (name, size, type) and write it atomically under ``folder``; on any refusal
        nothing is written."""
        name = safe_upload_name(name)
        suffix = suffix_of(name, suffixes)
        if suffix is None:
            raise InputError(f"Upload refused: '{name}' is not one of {', '.join(suffixes)}.")
        if len(content) > self.max_upload_bytes:
            raise InputError(f"Upload refused: '{name}' is {_size(len(content))}, over the "
                             f"{_size(self.max_upload_bytes)} limit.")
        if not sniff_type(bytes(content[:1024]), suffix):
            raise InputError(f"Upload refused: '{name}' does not contain {suffix} data.")
        target_dir = self.resolve(folder, must_exist=False)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = self._unique(target_dir / name)
        return write_atomic(target, lambda tmp: tmp.write_bytes(content))

    @staticmethod
    def _unique(path: Path) -> Path:
        if not path.exists():
            return path
        suffix = "".join(path.suffixes)
        stem = path.name[: -len(suffix)] if suffix else path.name
        n = 1
        while (candidate := path.with_name(f"{stem}-{n}{suffix}")).exists():
            n += 1
        return candidate


def _size(n: int) -> str:
    return f"{n} bytes" if n < 10_000 else f"{n / 2**20:.2f} MB"


def _looks_like_series(filenames: list[str]) -> bool:
    """A folder of DICOM files (or of video frames) is loadable as a whole."""
    dicom = [f for f in filenames if f.lower().endswith(".dcm") or "." not in f]
    frames = [f for f in filenames if suffix_of(f, FRAME_SUFFIXES)]
    return len(dicom) >= 1 or len(frames) >= 2
