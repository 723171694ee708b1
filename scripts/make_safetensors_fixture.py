#!/usr/bin/env python3
"""Writes the safetensors fixtures that tests/unit/test_safetensors.c reads, with the real
Python `safetensors` package (pip install safetensors numpy), so that the C reader is
checked against files it did not write itself.

    python3 scripts/make_safetensors_fixture.py [OUTDIR]   (default tests/fixtures/safetensors)

Outputs (a few hundred bytes each; committed):
  python.safetensors      every dtype pagoda reads, a scalar, an empty tensor, metadata
  python_f64.safetensors  a valid file with an F64 tensor, which pagoda refuses by name

The values follow formulas that the C test recomputes; change both together.
"""
import os
import sys

import numpy as np
import safetensors
import safetensors.numpy


def spec(arr, dtype=None):
    """A TensorSpec for arr (kept alive by the caller); dtype overrides numpy's name."""
    assert arr.flags.c_contiguous  # (np.ascontiguousarray would turn a scalar into [1])
    return safetensors.TensorSpec(dtype=dtype or arr.dtype.name, shape=arr.shape,
                                  data_ptr=arr.ctypes.data, data_len=arr.nbytes)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "safetensors")
    os.makedirs(out, exist_ok=True)

    # numpy has no bfloat16: the BF16 bits are the upper half of float32 values that
    # bfloat16 holds exactly.
    bf16_f32 = ((np.arange(6, dtype=np.float32) - 2) * 1.5).reshape(2, 3)
    arrays = {
        "model.embed_tokens.weight": ((np.arange(12, dtype=np.float32) - 6) * 0.125).reshape(3, 4),
        "f16": np.array([0.5, -1.25, 65504.0, 2.0 ** -24, -0.0], dtype=np.float16),
        "bf16": (bf16_f32.view(np.uint32) >> 16).astype(np.uint16),
        "i32": np.array([[-2 ** 31, -1], [0, 2 ** 31 - 1]], dtype=np.int32),
        "i64": np.array([-2 ** 63, 2 ** 40 + 1, 2 ** 63 - 1], dtype=np.int64),
        "u8": (np.arange(7, dtype=np.int64) * 37 % 256).astype(np.uint8),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    specs = {k: spec(v, "bfloat16" if k == "bf16" else None) for k, v in arrays.items()}
    safetensors.serialize_file(specs, os.path.join(out, "python.safetensors"),
                               metadata={"format": "np", "producer": "make_safetensors_fixture.py"})

    safetensors.numpy.save_file(
        {"ok": np.zeros(2, dtype=np.float32), "w": np.arange(3, dtype=np.float64)},
        os.path.join(out, "python_f64.safetensors"))

    # Read back with the package itself, so that a fixture it cannot read is never committed.
    with safetensors.safe_open(os.path.join(out, "python.safetensors"), framework="np") as f:
        assert sorted(f.keys()) == sorted(arrays)
        assert f.metadata()["format"] == "np"
        for k, v in arrays.items():
            if k != "bf16":  # numpy cannot hold bfloat16
                got = f.get_tensor(k)
                assert got.dtype == v.dtype and got.shape == v.shape, k
                assert np.array_equal(got, v), k
    back = safetensors.numpy.load_file(os.path.join(out, "python_f64.safetensors"))
    assert back["w"].dtype == np.float64
    print("wrote", out)


if __name__ == "__main__":
    main()
