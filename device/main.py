# Entry point, the same on the ESP32 and the simulator.
import sys

import app

if sys.platform == "esp32":
    from board.esp32 import Board
else:
    from board.sim import Board

app.main(Board)
