"""calcfleet: a distributed gRPC calculation service."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("calcfleet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
