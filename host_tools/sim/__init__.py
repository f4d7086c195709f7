"""The simulator: the firmware on the unix-port MicroPython, run through scenarios."""
