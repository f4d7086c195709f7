# Entry point, the same on the ESP32 and the simulator. It stays source on the
# board and no update replaces it, so it must stay small and never change its
# contract: ota.boot.run(board) first (finish or undo a swap, apply a staged
# update, roll back a failed one), then app.main(board, settings, boot).
# ota.boot is dropped once it has run: its code would take heap for good.
import sys

import rare
import store

if sys.platform == "esp32":
    from board.esp32 import Board
else:
    from board.sim import Board

settings, _ = store.load_json("device.json", {})
board = Board(settings)
boot = None
try:
    from ota import boot as ota_boot

    boot = ota_boot.run(board)
except Exception as e:  # a faulty boot step must not keep the app from starting
    sys.print_exception(e)
ota_boot = None
rare.drop("ota.boot", "core.otastate", "core.otadesired")
try:
    import app

    app.main(board, settings, boot)
except Exception as e:  # e.g. a module of a new version that does not import
    sys.print_exception(e)
    try:
        from ota import state

        state.crashed()
    except Exception:
        pass
    board.reset()
