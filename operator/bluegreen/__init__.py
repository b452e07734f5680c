"""bluegreen-operator: git-driven zero-downtime blue/green releases on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bluegreen-operator")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0.0.0"
