"""Training side of animerec: `python -m train prepare|fit|calibrate|evaluate|face-check|pack|bench` (see `train.cli`)."""
