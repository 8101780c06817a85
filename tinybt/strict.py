"""The `strict` backend: NumPy underneath, but its arrays refuse what CuPy's refuse.

CuPy keeps its arrays on the GPU and will not copy them to or from the host behind your back
(its documentation: "cupy.ndarray and numpy.ndarray are not implicitly convertible to each
other"). Code that forgets this runs on NumPy and fails only on a GPU. `DeviceArray` wraps a
NumPy array and behaves as a CuPy array does, so that such a mistake fails on any CPU:

- implicit conversion to NumPy (`numpy.asarray`, `numpy.array`, matplotlib, PIL) raises
  TypeError, as CuPy's `__array__` does; so do `numpy.savez` and every other NumPy function
  given a device array (CuPy would run the few it implements; strict asks for the array's own
  module, `backend.get_array_module(x)`, which always works); `json` refuses a device scalar,
  because a reduction returns a 0-d device array, not a Python or NumPy number;
- arithmetic and comparisons mixing a device array with a host `numpy.ndarray` (0-d included)
  or a list raise TypeError, as CuPy's ufuncs do ("Unsupported type");
- what CuPy allows works: Python and NumPy scalars, ufuncs such as `numpy.exp(x)`, `float(x)`,
  `int(x)`, `bool(x)`, `x.item()`, `x.tolist()`, `len(x)`, printing, indexing (CuPy also
  takes host index arrays and host values in `x[i] = v`);
- `numpy_on_device` stands in for the `cupy` module: it runs NumPy's functions on the wrapped
  arrays and wraps what they return; only `asarray` and `array` accept host data, as in CuPy,
  and `backend.to_device` / `backend.to_host` are the way code moves arrays across.

Only `tinybt.backend` imports this module.
"""

import sys
import types

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

SCALARS = (int, float, complex, bool, numpy.generic)
HOST_PACKAGES = ("numpy", "matplotlib", "PIL", "json", "tinybt.strict")


def _call_site():
    """Where the refused call was made: the innermost frame outside NumPy and its kin."""
    frame = sys._getframe(1)
    while frame and frame.f_globals.get("__name__", "").startswith(HOST_PACKAGES):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "unknown"


def refuse(what):
    raise TypeError(
        f"{what} at {_call_site()}: a device array (strict backend, as with CuPy) is not "
        "converted implicitly: use backend.to_host(x) for NumPy code, backend.to_device(x) "
        "for host data, and backend.get_array_module(x) for the array's own functions"
    )


def unwrap(value, allow_host=False):
    """`value` with every DeviceArray in it (lists and tuples too) replaced by its NumPy array."""
    if isinstance(value, DeviceArray):
        return value._array
    if isinstance(value, numpy.ndarray) and not allow_host:
        refuse("a host numpy.ndarray mixed with device arrays")
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(item, allow_host) for item in value)
    if isinstance(value, dict):
        return {key: unwrap(item, allow_host) for key, item in value.items()}
    return value


def wrap(value):
    """`value` with every NumPy array or scalar in it made a DeviceArray (as CuPy returns)."""
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return DeviceArray(numpy.asarray(value))
    if isinstance(value, (list, tuple)):
        return type(value)(wrap(item) for item in value)
    return value


def on_device(function, allow_host=False):
    """`function` taking and returning device arrays."""

    def call(*args, **kwargs):
        return wrap(function(*unwrap(args, allow_host), **unwrap(kwargs, allow_host)))

    call.__name__ = call.__qualname__ = getattr(function, "__name__", "function")
    return call


class DeviceArray(NDArrayOperatorsMixin):
    """A NumPy array that behaves as a CuPy array on a GPU (see the module docstring)."""

    __slots__ = ("_array",)

    def __init__(self, array):
        self._array = array

    def __array__(self, dtype=None, copy=None):
        refuse("implicit conversion to a NumPy array (numpy.asarray, numpy.array, plotting)")

    def __array_function__(self, func, types, args, kwargs):
        refuse(f"numpy.{func.__name__} called on a device array")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """Operators and ufuncs: scalars and device arrays only, as CuPy's ufuncs."""
        for value in inputs + kwargs.get("out", ()):
            if not isinstance(value, (DeviceArray, *SCALARS)):
                refuse(f"numpy.{ufunc.__name__} on a device array and a {type(value).__name__}")
        result = getattr(ufunc, method)(*unwrap(inputs), **unwrap(kwargs))
        out = kwargs.get("out")
        return (out[0] if len(out) == 1 else out) if out else wrap(result)

    def __getattr__(self, name):  # shape, dtype, .T, .sum(), .astype(), ...
        if name.startswith("__") or name == "_array":  # __array_interface__ and such; unset
            raise AttributeError(name)
        value = getattr(self._array, name)
        return on_device(value) if callable(value) else wrap(value)

    def __getitem__(self, index):
        return wrap(self._array[unwrap(index, allow_host=True)])

    def __setitem__(self, index, value):
        self._array[unwrap(index, allow_host=True)] = unwrap(value, allow_host=True)

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (wrap(row) for row in self._array)

    def __float__(self):
        return float(self._array)

    def __int__(self):
        return int(self._array)

    def __bool__(self):
        return bool(self._array)

    def __format__(self, spec):
        return format(self._array, spec)

    def __repr__(self):
        return f"DeviceArray({self._array!r})"

    def __copy__(self):
        return DeviceArray(self._array.copy())

    def __deepcopy__(self, memo):
        return DeviceArray(self._array.copy())


class _OnDevice(types.SimpleNamespace):
    """A NumPy namespace (the module, `linalg`) whose functions run on device arrays."""

    def __init__(self, module, name):
        super().__init__(__name__=name, _module=module)

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if isinstance(value, types.ModuleType):
            value = _OnDevice(value, f"{self.__name__}.{name}")
        elif callable(value) and not isinstance(value, type):  # functions, not dtypes
            value = on_device(value, allow_host=name in ("asarray", "array"))
        setattr(self, name, value)  # looked up once
        return value


numpy_on_device = _OnDevice(numpy, "strict")
numpy_on_device.ndarray = DeviceArray
