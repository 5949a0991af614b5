"""Commands that run many plans: sweeps, submissions."""
