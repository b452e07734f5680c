"""Commit signature verification with the standard tools (gpg, ssh-keygen)."""
