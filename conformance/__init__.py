"""klconf: a cross-framework conformance suite for KL-divergence APIs."""

__version__ = "0.1.0"
