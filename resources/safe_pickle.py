"""Read a pickle as data: a restricted unpickler for the Severson batch pickles users drop.

A pickle is a program: unpickling calls whatever callables the file names (`os.system`
through `__reduce__`, or any importable module through a global reference). This
unpickler resolves a global only from the table below and never imports a module, so a
file naming anything else stops at that name, before it is called, with the module and
name in the error. Dicts, lists, tuples, str, bytes, int, float, bool and None need no
global: pickle builds them from its own opcodes (so do sets under protocol 4 and later).

Admitted globals (what the Braatz-repository batch pickles, written by Python 3 with
numpy 1.x, and our synthetic ones, written with numpy 2.x, hold):

    numpy.core.multiarray._reconstruct  numpy.ndarray's reducer (protocols 0-4); `numpy._core`
    numpy._core.multiarray._reconstruct   is numpy 2's spelling, `numpy.core` numpy 1's
    numpy.core.numeric._frombuffer      the reducer of contiguous arrays under protocol 5
    numpy._core.numeric._frombuffer
    numpy.ndarray                       the subtype argument of _reconstruct
    numpy.dtype                         array and scalar dtypes; object dtypes are refused,
                                        since an object array is a container of arbitrary objects
    numpy.core.multiarray.scalar        numpy scalars (np.float64(1.0), np.int64(3)), non-object
    numpy._core.multiarray.scalar         dtypes only
    _codecs.encode                      how protocol 2 writes bytes (an array's raw data) for
                                        Python 2 readers; admitted with the latin-1 codec only

Each name maps to a fixed callable taken from numpy itself, so which module a name
spells cannot change what runs. Python 2 pickles are read with encoding="latin1"
(numpy's advice for arrays written by Python 2).

Not guarded here: size. A file can still ask for a large array; the drop folder is the
user's own, so this is a resource limit, not a way to run code.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

ADMITTED_SUMMARY = "dict, list, tuple, str, bytes, numbers, numpy arrays, scalars and dtypes"


def _numpy_reducers() -> tuple:
    """numpy's own (_reconstruct, _frombuffer, scalar): taken from its reductions, never imported by name."""
    reconstruct = np.ndarray((1,)).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float64(0.0).__reduce__()[0]
    return reconstruct, frombuffer, scalar


_RECONSTRUCT, _FROMBUFFER, _SCALAR = _numpy_reducers()


def _data_dtype(*args) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("numpy object dtype is not admitted (an object array holds arbitrary objects)")
    return dtype


def _data_scalar(dtype: np.dtype, *args):
    if dtype.hasobject:
        raise pickle.UnpicklingError("numpy object scalar is not admitted")
    return _SCALAR(dtype, *args)


def _latin1_encode(text: str, encoding: str = "utf-8"):
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not admitted (only latin-1)")
    return codecs.encode(text, "latin1")


ADMITTED: dict[tuple[str, str], Any] = {
    **{(f"{package}.multiarray", "_reconstruct"): _RECONSTRUCT for package in ("numpy.core", "numpy._core")},
    **{(f"{package}.numeric", "_frombuffer"): _FROMBUFFER for package in ("numpy.core", "numpy._core")},
    **{(f"{package}.multiarray", "scalar"): _data_scalar for package in ("numpy.core", "numpy._core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _data_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class DataUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose globals come only from ADMITTED (no import, no other callable)."""

    def find_class(self, module: str, name: str):
        try:
            return ADMITTED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{module}.{name} is not admitted in a data pickle (admitted: {ADMITTED_SUMMARY})") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not admitted in a data pickle")


def load_data_pickle(path: Path) -> Any:
    """The value of a pickle file, read as data (pickle.UnpicklingError names what was refused)."""
    with open(path, "rb") as handle:
        return DataUnpickler(handle, encoding="latin1").load()
