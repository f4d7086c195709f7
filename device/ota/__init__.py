# Over-the-air updates: signed bundles (bundle.py) verified on the device with
# ECDSA P-256 (p256.py) before anything is written where it would run.
