"""One module per layer family; the public names are re-exported by `keraslayers`."""
