"""Verification: one input sampler, the reference runner chosen through the Frontend interface,
comparison, and the report (one versioned schema for the JSON and the HTML)."""

from .core import verify
from .report import SCHEMA, InputCoverage, VerifyReport

__all__ = ["SCHEMA", "InputCoverage", "VerifyReport", "verify"]
