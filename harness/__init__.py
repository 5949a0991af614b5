"""Benchmark and evaluation harness for fine-tuning methods of text-to-image diffusion models."""

__version__ = "0.1.0"
