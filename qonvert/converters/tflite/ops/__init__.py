from . import activation, conv, generate, index, logic, math, norm, quant, resize, shape, space  # noqa: F401  (registers the mappers)
