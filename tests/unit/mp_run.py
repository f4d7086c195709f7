# Runs table-driven core cases under MicroPython: micropython mp_run.py cases_tz ...
# Each case module defines test_* functions that use plain assert and run on
# CPython (collected by pytest) and MicroPython (run here) alike.
import sys

passed = failed = 0
for name in sys.argv[1:]:
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        try:
            getattr(mod, attr)()
            passed += 1
        except Exception as e:  # report and go on: every case is counted
            failed += 1
            print("FAIL %s.%s: %r" % (name, attr, e))
            sys.print_exception(e)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
