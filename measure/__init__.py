"""Measuring the library, apart from it: benchmarks (`python -m measure`), a detector scored
against hand-marked boxes, and the curves and ROC figures calibration fits and reports. It
imports `animerec`; nothing in `animerec` imports it."""
