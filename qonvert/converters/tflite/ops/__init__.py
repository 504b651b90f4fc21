from . import activation, control, conv, detect, generate, index, logic, math, norm, quant, random, resize, segment, shape, space, spectral  # noqa: F401  (registers the mappers)
