"""Paddle op mappers; importing this package registers them all."""

from . import activation, conv, math, norm, quant, shape  # noqa: F401
