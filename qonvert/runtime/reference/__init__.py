"""Reference runners: the source framework's own runtime (Paddle's in a subprocess, one per
program format; LiteRT and PyTorch in this process)."""
