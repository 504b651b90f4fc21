"""Reference runners: the source framework's own runtime, run in a subprocess."""
