"""Command line and demo of SlicerSurgicalAI (``surgicalai``); the work is done by the module Libs."""
