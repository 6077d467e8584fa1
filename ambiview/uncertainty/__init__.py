"""Everything computed from a stack of hypotheses (numpy/scipy/SimpleITK only; no Qt, no torch).

- ``maps``: per-pixel maps (coverage, entropy, variance, pairwise disagreement) and ``MEASURES`` for the UI picker.
- ``consensus``: agreement-level consensus, confidence bands, STAPLE.
- ``modes``: clustering hypotheses into interpretations.
- ``stats``: areas, volumes, longest diameters in mm; IoU with a reference.
- ``summary``: one JSON-ready summary of a result.
- ``metrics``, ``bootstrap``: evaluation against annotations (GED, HM-IoU, soft Dice, NCC, CI) with bootstrap CIs.

Submodules are imported explicitly (``from ambiview.uncertainty.metrics import ged``) so that importing one does not
pull in the others' dependencies.
"""
