"""Verification: input sampling, comparison and reports (api.verify calls in here)."""
