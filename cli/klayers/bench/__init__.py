"""`klayers bench`: suites, the plan, one worker subprocess per backend, results, reports."""
