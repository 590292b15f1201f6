"""ceas-gym: entanglement-aware scheduling environments for distributed quantum neural networks."""

__version__ = "0.1.0"
