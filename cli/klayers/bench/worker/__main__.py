"""`python -m klayers.bench.worker < job.json`: the benchmark worker (see the package docstring)."""

import sys

from klayers import process
from klayers.bench.protocol import Job

protocol = process.protocol_stream()
job = Job.from_json(sys.stdin.read())
process.pin_to_cores(job.settings.cores)

from klayers.bench.worker.measure import main  # noqa: E402  (imports keras: after the pinning)

main(job, protocol)
