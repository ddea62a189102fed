"""`python -m klayers.train.worker < job.json`: the training worker (see the package docstring)."""

from klayers.train.worker import main

main()
