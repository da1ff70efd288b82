"""Reading images (NIfTI, NRRD, MHA/MHD files or a DICOM series folder) and writing results atomically."""
from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from SurgicalAICore.atomic import atomic_file
from SurgicalAICore.errors import InputError

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def has_suffix(path: str | Path, suffixes) -> bool:
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in suffixes)


def _quiet_itk():
    """SimpleITK prints reader warnings to stderr; the caller reports its own one-line error."""
    sitk.ProcessObject.SetGlobalWarningDisplay(False)


def dicom_series_ids(folder: str | Path) -> list[str]:
    """The DICOM series UIDs in ``folder``; GDCM's 'No Series were found' warning is not printed."""
    from SurgicalAICore.library_output import sitk_warnings_off

    with sitk_warnings_off():
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def read_dicom_series(folder: str | Path, series_id: str | None = None) -> sitk.Image:
    """The one DICOM series in ``folder`` (or ``series_id``); a folder with several series is an error."""
    folder = Path(folder)
    _quiet_itk()
    try:  # GDCM throws while scanning a file with impossible tags (e.g. 0 samples per pixel)
        ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError as error:
        raise InputError(f"Cannot read the DICOM files in {folder}: {_first_line(error)}") from None
    if not ids:
        raise InputError(f"No DICOM series found in folder {folder}.")
    if series_id is None:
        if len(ids) > 1:
            raise InputError(f"Folder {folder} holds {len(ids)} DICOM series (mixed series); put each series in "
                             f"its own folder or choose one (series UIDs: {', '.join(i[-12:] for i in ids)}).")
        series_id = ids[0]
    elif series_id not in ids:
        raise InputError(f"DICOM series {series_id} is not in folder {folder}.")
    reader = sitk.ImageSeriesReader()
    try:
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id))
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"Cannot read the DICOM series in {folder}: {_first_line(error)}") from None
    return image


def read_image(path: str | Path, series_id: str | None = None) -> sitk.Image:
    """A 3-D image from a file (NIfTI, NRRD, MHA/MHD, ...) or a DICOM series folder (LPS geometry)."""
    if path is None or not str(path).strip():
        raise InputError("No input image was given.")
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path, series_id)
    if not path.exists():
        raise InputError(f"Input file not found: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"Input file {path} is not readable (permissions).")
    if path.stat().st_size == 0:
        raise InputError(f"Input file {path} is empty.")
    _quiet_itk()
    if path.name.lower().endswith((".nii", ".nii.gz")):
        from SurgicalAICore.nifti_check import check_nifti_payload

        check_nifti_payload(path)  # SimpleITK reads a cut-short body as zeros and NaN voxels as 0
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(f"Cannot read image file {path}: not a supported or intact image "
                         f"({_first_line(error)[:120]}).") from None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # ITK messages start with the source location; the last line says what went wrong
    return lines[-1] if lines else type(error).__name__


def check_output_path(path: str | Path, suffixes=None) -> Path:
    """Refuse an output whose folder is missing or not writable, or with an unknown suffix."""
    if path is None or not str(path).strip():
        raise InputError("No output path was given.")
    path = Path(path)
    if suffixes is not None and not has_suffix(path, suffixes):
        raise InputError(f"Output {path.name} must end in one of: {', '.join(suffixes)}.")
    if path.is_dir():
        raise InputError(f"Output {path} is a folder; give a file name.")
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: folder {path.parent} does not exist.")
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"Cannot write {path}: folder {path.parent} is not writable.")
    return path


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write an image atomically (to a temporary file in the same folder, then renamed)."""
    path = check_output_path(path)
    suffix = "".join(Path(path.name).suffixes[-2:]) if path.name.lower().endswith(".nii.gz") else path.suffix
    try:
        with atomic_file(path, suffix) as tmp:
            sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as error:
        raise InputError(f"Cannot write {path}: {_first_line(error)}") from None
    return path
