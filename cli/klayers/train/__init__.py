"""`klayers train`: set-ups, data sets, one training worker subprocess per backend, display."""
