"""ConvScope's engine: a small convolutional network in plain NumPy (no Qt, no torch)."""

__version__ = "0.1.0"
