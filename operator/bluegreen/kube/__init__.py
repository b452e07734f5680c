"""The Kubernetes API through the official client: the only package importing ``kubernetes``."""
