"""seacan: a containerd-style container runtime for Linux."""

__version__ = "0.1.0"
