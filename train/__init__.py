"""Training side of animerec: `python -m train prepare|fit|calibrate|evaluate|pack|bench` (see `train.cli`)."""
