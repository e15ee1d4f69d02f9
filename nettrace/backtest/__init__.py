"""The COLD stage: vectorised signals, a compiled sequential kernel for fills, results."""
