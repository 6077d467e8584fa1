"""Masks out and in: DICOM RTSTRUCT (write and read), DICOM SEG (binary and fractional), NIfTI.

Modules: `items` (ExportItem, ExportError), `contours` (the pixel-edge contour convention and its fill rule),
`rtstruct_write`, `rtstruct_read`, `seg`, `nifti`, `measure` (volumes in mL), `atomic` (atomic writes that never
touch the source folder).  No Qt here; the CLI and the UI call these through the session.
"""
