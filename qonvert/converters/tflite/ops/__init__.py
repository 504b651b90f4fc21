from . import activation, conv, math, quant, resize, shape  # noqa: F401  (registers the mappers)
