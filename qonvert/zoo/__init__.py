"""The zoo regression harness: a TOML manifest of models, each converted and verified in its own
worker process, a versioned JSON report, and golden reports to catch regressions."""
