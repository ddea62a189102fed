"""`python -m klayers.bench.worker < job.json`: the benchmark worker (see the package docstring)."""

from klayers.bench.worker import main

main()
