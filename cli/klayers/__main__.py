"""`python -m klayers`, the same as the `klayers` console script."""

from klayers.main import cli

if __name__ == "__main__":
    cli(prog_name="klayers")
