"""The benchmark worker: `KERAS_BACKEND=jax python -m klayers.bench.worker < job.json`.

The only part of the command that imports keras and a backend; the parent starts one per
backend. It reads a job (settings and a list of measurements) as JSON on stdin, measures the
machine's peak with a large float32 matrix product on every device of the job, then each
case's implementations together (ours and its baselines, timed in alternating blocks), and
writes one JSON line per event on stdout: first `{"event": "ready", ...}`, then
`{"event": "record", ...}` per measurement, in the job's order.
A measurement that raises gives a record with status "error"; only a crash, a hang or the
operating system's OOM killer stops the worker, and the parent restarts it after that case.

Layout: `__main__` prepares the process (the protocol stream, the job, the CPU cores: all
before a backend is imported), then runs `measure.main`; `measure` imports keras at the top.
"""
