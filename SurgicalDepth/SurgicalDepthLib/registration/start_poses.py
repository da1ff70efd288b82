"""The start-pose methods of a registration and their display labels, torch-free so that a parser's
``--help`` and a panel's choice list can name them without importing the search itself."""
from __future__ import annotations

INITIALISER_LABELS: dict[str, str] = {
    "current": "Current pose",
    "tracking": "Tracked endoscope",
    "landmarks": "Landmarks",
    "global": "Global search around current",
    "global-full": "Global search (no prior)",
}
