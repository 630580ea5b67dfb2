"""Training: jobs (no torch) and the worker; torch is imported only by the modules that train."""
