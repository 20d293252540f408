"""`mamba_ssm` (a CUDA-only package), the selective scan only, in plain torch, for CPU dynamic checks.
Found only where the real package is not installed (pgolf_shim_device puts this folder last)."""

__version__ = "2.2.4+pgolf.stand-in"
