"""The process layer that `klayers bench` and `klayers train` share (filled in below)."""
