"""The `klayers` command: Click commands, Rich rendering, orchestration of backend subprocesses.

Nothing here imports keras or a backend at module level, so the parent process can drive one
worker subprocess per backend.
"""
