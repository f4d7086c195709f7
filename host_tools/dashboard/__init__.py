"""`spotty dashboard`: every device at a glance, its settings and use, in the browser."""
