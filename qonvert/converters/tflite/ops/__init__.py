from . import activation, conv, index, math, norm, quant, resize, shape, space  # noqa: F401  (registers the mappers)
