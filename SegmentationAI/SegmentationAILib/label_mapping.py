"""Which label values or segments become which training classes.

A class gathers one or more label values (or segment names) of one label source; several values
in one class merge them (BRATS 1-4 -> "whole tumour"). Classes are painted in the order given,
later ones over earlier ones, so list enclosing structures first (brain, then tumour).

Text form (CLI and panel): ``NAME=VALUES`` or ``NAME=SOURCE:VALUES`` with VALUES a comma list of
integers, ranges ``1-4`` or segment names, e.g. ``brain=brainmask:1`` and
``whole_tumour=OTMultiClass:1-4``.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from SegmentationAILib.cases import Case
from SurgicalAICore.errors import InputError

Value = int | str
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")
MAX_LABEL_VALUE = 2**31 - 1  # label images hold at most 32-bit integers
MAX_EXPANDED_RANGE = 4096  # wider ranges are matched against the values present, not listed


def default_color(index: int) -> list[float]:
    """A distinct colour for class ``index`` (1-based), golden-ratio hues."""
    h = (index * 0.618033988749895) % 1.0
    return [round(c, 3) for c in colorsys.hsv_to_rgb(h, 0.65, 0.95)]


@dataclass
class ClassSpec:
    name: str
    values: list[Value]
    source: str | None = None
    color: list[float] = field(default_factory=list)


def _parse_values(text: str, where: str) -> list[Value]:
    values: list[Value] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = _RANGE.fullmatch(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise InputError(f"Class '{where}': range {part} is empty.")
            if hi > MAX_LABEL_VALUE:
                raise InputError(f"Class '{where}': label values go up to {MAX_LABEL_VALUE}, got {part}.")
            # a wide range stays text and is matched against the values a case holds (never expanded)
            values.extend(range(lo, hi + 1) if hi - lo < MAX_EXPANDED_RANGE else [f"{lo}-{hi}"])
        elif part.isdigit():
            if int(part) > MAX_LABEL_VALUE:
                raise InputError(f"Class '{where}': label values go up to {MAX_LABEL_VALUE}, got {part}.")
            values.append(int(part))
        else:
            values.append(part)
    if not values:
        raise InputError(f"Class '{where}' lists no label values.")
    if any(isinstance(v, int) and v == 0 for v in values):
        raise InputError(f"Class '{where}': value 0 is background and cannot be a class.")
    return values


def parse_class(text: str) -> ClassSpec:
    """``NAME=[SOURCE:]VALUES`` -> ClassSpec."""
    if "=" not in text:
        raise InputError(f"Class '{text}' must read NAME=VALUES, e.g. whole_tumour=1-4 or brain=brainmask:1.")
    name, rest = (s.strip() for s in text.split("=", 1))
    if not name:
        raise InputError(f"Class '{text}' has no name.")
    source = None
    if ":" in rest:
        source, rest = (s.strip() for s in rest.split(":", 1))
    return ClassSpec(name=name, values=_parse_values(rest, name), source=source or None)


class LabelMapping:
    """An ordered list of classes (output values 1..N) and the way to make them from a case."""

    def __init__(self, classes: Sequence[ClassSpec]):
        if not classes:
            raise InputError("The label mapping has no classes.")
        names = [c.name for c in classes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"Class names must be unique; repeated: {', '.join(dupes)}.")
        self.classes = list(classes)
        for i, c in enumerate(self.classes, start=1):
            if not c.color:
                c.color = default_color(i)

    @classmethod
    def parse(cls, texts: Sequence[str]) -> LabelMapping:
        return cls([parse_class(t) for t in texts])

    @classmethod
    def identity(cls, cases: Sequence[Case], names: dict[int, str] | None = None) -> LabelMapping:
        """One class per non-zero value found in the cases' first label source (names from the segments
        when the cases come from segmentations)."""
        found: dict[int, str] = {}
        for case in cases:
            source = next(iter(case.labels))
            seg_names = case.segment_names.get(source, {})
            for v in np.unique(case.label_array(source)):
                v = int(v)
                if v != 0 and v not in found:
                    found[v] = (names or {}).get(v) or seg_names.get(v) or f"label_{v}"
        if not found:
            raise InputError("No case has any labelled voxel.")
        if any(c.segment_names for c in cases):
            # segment values differ between cases; names are what they share
            by_name: dict[str, None] = {}
            for v in sorted(found):
                by_name.setdefault(found[v])
            return cls([ClassSpec(name=n, values=[n]) for n in by_name])
        return cls([ClassSpec(name=found[v], values=[v]) for v in sorted(found)])

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def card_labels(self) -> list[dict]:
        return [
            {"value": i, "name": c.name, "color": [float(x) for x in c.color]}
            for i, c in enumerate(self.classes, start=1)
        ]

    def to_list(self) -> list[dict]:
        return [{"name": c.name, "values": list(c.values), "source": c.source} for c in self.classes]

    def _source_key(self, case: Case, spec: ClassSpec) -> str:
        if spec.source is None:
            if len(case.labels) > 1:
                raise InputError(
                    f"Class '{spec.name}' must name its label source ({', '.join(case.labels)}) "
                    f"because case '{case.name}' has several, e.g. {spec.name}={next(iter(case.labels))}:1."
                )
            return next(iter(case.labels))
        if spec.source in case.labels:
            return spec.source
        hits = [k for k in case.labels if spec.source.lower() in k.lower()]
        if len(hits) != 1:
            raise InputError(
                f"Class '{spec.name}': label source '{spec.source}' is not one of case "
                f"'{case.name}''s sources ({', '.join(case.labels)})."
            )
        return hits[0]

    def _values_of(self, case: Case, key: str, spec: ClassSpec) -> list[int]:
        out = []
        names = case.segment_names.get(key, {})
        for v in spec.values:
            wide = _RANGE.fullmatch(v) if isinstance(v, str) else None
            if isinstance(v, int):
                out.append(v)
            elif wide:
                present = np.unique(case.label_array(key))
                lo, hi = int(wide.group(1)), int(wide.group(2))
                out.extend(int(x) for x in present[(present >= lo) & (present <= hi)])
            else:
                matches = [val for val, n in names.items() if n.lower() == v.lower()]
                out.extend(matches)
        return out

    def apply(self, case: Case) -> np.ndarray:
        """The case's class map (uint8 [k, j, i], 0 background, 1..N the classes)."""
        shape = sitk.GetArrayViewFromImage(case.images[0]).shape
        out = np.zeros(shape, np.uint8)
        for index, spec in enumerate(self.classes, start=1):
            key = self._source_key(case, spec)
            values = self._values_of(case, key, spec)
            if values:
                out[np.isin(case.label_array(key), values)] = index
        return out

    def apply_image(self, case: Case) -> sitk.Image:
        image = sitk.GetImageFromArray(self.apply(case))
        image.CopyInformation(case.images[0])
        return image


@dataclass
class MappingReport:
    """Which classes each case holds; ``problems`` are warnings a user should see."""

    present: dict[str, list[str]]
    problems: list[str]


def check_mapping(mapping: LabelMapping, cases: Sequence[Case]) -> MappingReport:
    """Apply the mapping to every case; raise on cases without labels and on classes found in no case,
    report classes missing from some cases and cases whose channel count differs."""
    if not cases:
        raise InputError("No cases were given.")
    channels = {len(c.images) for c in cases}
    if len(channels) > 1:
        counts = ", ".join(f"{c.name}: {len(c.images)}" for c in cases)
        raise InputError(f"All cases need the same number of image channels ({counts}).")
    present: dict[str, list[str]] = {}
    for case in cases:
        classes = mapping.apply(case)
        values = set(int(v) for v in np.unique(classes)) - {0}
        if not values:
            raise InputError(
                f"Case '{case.name}' has no labelled voxel after label mapping "
                f"(classes {', '.join(mapping.names)}); check its label file or the mapping."
            )
        present[case.name] = [mapping.classes[v - 1].name for v in sorted(values)]
    problems = []
    for spec in mapping.classes:
        holders = [n for n, p in present.items() if spec.name in p]
        if not holders:
            raise InputError(
                f"Class '{spec.name}' (values {spec.values}) is missing from all {len(cases)} cases; "
                f"remove it from the mapping or fix the labels."
            )
        if len(holders) < len(cases):
            lacking = [n for n in present if n not in holders]
            problems.append(
                f"Class '{spec.name}' is absent in {len(lacking)} of {len(cases)} cases: {', '.join(lacking[:8])}."
            )
    return MappingReport(present=present, problems=problems)
