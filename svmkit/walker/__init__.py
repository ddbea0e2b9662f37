"""The walkers: a plain-Python reference (:mod:`.reference`) and a numba one (:mod:`.jit`)."""
