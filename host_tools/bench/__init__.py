"""`make bench`: figures from real runs of the firmware (`python -m host_tools.bench`)."""
