#!/usr/bin/env python3
"""Write the small .npy fixtures the Swift tests read (numpy's own writer, so the tests check
that we read what numpy writes).

    python3 Tests/Reference/make_npy_fixtures.py Tests/FormatsTests/Fixtures/npy
"""
import os
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
values = np.array([[0.5, -1.25, 3.0], [1e-3, 7.0, -2.5]])
np.save(os.path.join(out, "float32.npy"), values.astype("<f4"))
np.save(os.path.join(out, "float64.npy"), values.astype("<f8"))
np.save(os.path.join(out, "int32.npy"), np.array([[1, -2, 3], [2**31 - 1, 0, -(2**31)]], dtype="<i4"))
np.save(os.path.join(out, "int64.npy"), np.array([[1, -2, 3], [2**40, 0, -5]], dtype="<i8"))
np.save(os.path.join(out, "bigendian.npy"), values.astype(">f4"))
np.save(os.path.join(out, "scalar.npy"), np.float32(2.5))
np.save(os.path.join(out, "rank3.npy"), np.arange(24, dtype="<f4").reshape(2, 3, 4))
np.save(os.path.join(out, "fortran.npy"), np.asfortranarray(values.astype("<f4")))
np.save(os.path.join(out, "uint8.npy"), np.array([1, 2, 3], dtype="u1"))
