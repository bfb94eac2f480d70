"""Products whose bits do not depend on the BLAS thread count.

Models no kernel file. ``a @ b`` and ``np.dot`` call BLAS, which splits a
long product over its threads and adds the partial sums in an order that
depends on how many there are (``OPENBLAS_NUM_THREADS``, or the limit a
process pool sets in its workers), so the same configuration could give
results differing in the last bits in a worker and in the coordinating
process. :func:`fdot` sums in one fixed order (``numpy.einsum`` without
path optimisation, which never calls BLAS), whatever the threads.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fdot"]


def fdot(a, b) -> np.ndarray | float:
    """``a @ b`` for 1-D or 2-D float operands, summed in a fixed order (dimensionless).

    Shapes as for ``@``: (n,)·(n,) -> scalar, (m, n)·(n,) -> (m,),
    (n,)·(n, k) -> (k,), (m, n)·(n, k) -> (m, k).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    spec = {(1, 1): "i,i->", (2, 1): "mi,i->m", (1, 2): "i,ik->k", (2, 2): "mi,ik->mk"}.get((a.ndim, b.ndim))
    if spec is None:
        raise ValueError(f"fdot: operands of 1 or 2 dimensions, got {a.ndim} and {b.ndim}")
    out = np.einsum(spec, a, b, optimize=False)
    return float(out) if out.ndim == 0 else out
