"""``python -m ddc.kernels``: compile the numba kernels into numba's cache after installation."""

from ddc.kernels import precompile

if __name__ == "__main__":
    print(f"ddc kernels compiled (or loaded from numba's cache) in {precompile():.1f} s")
