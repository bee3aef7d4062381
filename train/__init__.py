"""Training side of animerec: `python -m train prepare|fit|evaluate|bench`."""
