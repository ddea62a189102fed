"""The training worker: `KERAS_BACKEND=jax python -m klayers.train.worker < job.json`.

The only part of `klayers train` and `klayers evaluate` that imports keras; the parent
(klayers.train.run) starts one per backend, one after another. It reads a job as JSON on stdin
and writes one JSON line per event on stdout:

- `{"event": "ready", ...}` once the data is loaded and the model built (or loaded);
- `{"event": "batch", ...}` now and then during an epoch, for the progress bar;
- `{"event": "epoch", ...}` after each epoch, once its checkpoint is on disk;
- `{"event": "done", ...}` with the test-set figures and timings, as the last line;
- `{"event": "error", "message": ...}` instead, for a mistake a user can make (a data set that
  cannot be loaded, a set-up that does not build); the worker then exits with code 1.

A training job writes into its backend's folder: a checkpoint after every epoch (the model
with its optimizer state, the random-number state, the epoch count), history.csv, and at the
end model.keras and model.json (what `klayers evaluate` needs). Every file is written to a
temporary file and renamed, and checkpoint.json, which names the checkpoint's files, is
renamed last: a worker killed at any moment leaves the previous checkpoint whole.

Layout: `__main__` prepares the process (the protocol stream, the job, the CPU cores: all
before a backend is imported), then runs `fit.main`; `fit` imports keras at the top.
"""
