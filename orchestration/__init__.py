"""The Dagster code location: wires ``analysis`` functions into assets, checks, jobs, schedules and sensors."""

import os

# After each BLAS call OpenBLAS's worker threads spin (busy-wait, 2**28 cycles by default) before they sleep. On a
# shared 2-core machine that spinning took CPU from everything else: the metabolomics analysis used 17 s of CPU
# instead of 7 s. 4 is OpenBLAS's shortest spin. The thread count and the split of the work are unchanged, so every
# result is bit-identical. OpenBLAS reads the variable once, when numpy/scipy first load it: this package is imported
# before any of them by `guttrial` and by the Dagster code location. An explicit setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
