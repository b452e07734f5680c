"""Checks and Jobs run for a commit: pre/post-promotion HTTP and Job checks (later: migrations)."""
