"""Signed over-the-air updates: bundles, pushing them to a device, serving them."""
