"""Migration scripts, oldest first (``v0001_…``)."""
