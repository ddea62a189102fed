"""`python -m klayers.train.worker < job.json`: the training worker (see the package docstring)."""

import json
import os
import sys

from klayers import process

protocol = process.protocol_stream()
job = json.load(sys.stdin)
process.pin_to_cores(job.get("cores"))
if job.get("host_devices"):
    # Read by XLA when JAX starts: it must be set before keras imports jax.
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_force_host_platform_device_count={job['host_devices']}".strip())

from klayers.train.worker.fit import main  # noqa: E402  (imports keras: after the settings)

main(job, protocol)
