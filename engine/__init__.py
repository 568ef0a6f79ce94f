"""ConvScope's engine: a small convolutional network in plain NumPy (no Qt, no torch)."""

from engine.blas_kernels import prefer_best_kernels

__version__ = "0.1.0"

# Before anything imports NumPy: OpenBLAS picks its kernels when it loads (see engine.blas_kernels).
# The value set here, or None when OpenBLAS was left to choose.
BLAS_KERNEL_OVERRIDE = prefer_best_kernels()
