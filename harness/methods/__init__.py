"""Method families. Each implements the small contract in ``harness.methods.base``."""
