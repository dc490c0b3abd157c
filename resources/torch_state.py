"""A torch module as data: how to build it (JSON) + its state dict (tensors only).

A pickled module (torch.save(module), read by torch.load without weights_only) can run any code
when read. Stored instead:
    spec         {"class": "<module>:<name>", "arguments": {...}} — the constructor's
                 arguments, read back from the module's attributes of the same names
                 (scikit-learn's convention; MultiscaleEncoder keeps `shape`, torch.nn
                 layers keep theirs); dataclass arguments as {"dataclass": class, "fields"},
                 tuples as {"tuple": [...]}; torch.nn.Sequential as its children's specs
    state dict   torch.save(module.state_dict()), read with torch.load(weights_only=True)
At write the spec is rebuilt (on the meta device, no memory or random numbers used) and
must give the same state-dict names and shapes, so a module whose constructor arguments
cannot be read back is refused at write rather than rebuilt wrong at read. Classes come
only through resolve_class (the storage's allow-list).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

ResolveClass = Callable[[str, type], type]  # (class path, required base) -> class


def class_path(obj_or_class: Any) -> str:
    cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(value: Any, default: Any, where: str) -> Any:
    """A constructor argument as JSON (bias-style flags read from their tensors)."""
    if isinstance(default, bool) and not isinstance(value, bool):
        return value is not None  # torch.nn layers keep `bias` as a tensor (or None) for the flag bias=True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": class_path(value),
                "fields": {f.name: _encode(getattr(value, f.name), None, f"{where}.{f.name}")
                           for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, None, where) for item in value]}
    if isinstance(value, list):
        return [_encode(item, None, where) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"{where}: a {type(value).__name__} constructor argument cannot be stored as data")


def _decode(value: Any, resolve_class: ResolveClass) -> Any:
    if isinstance(value, list):
        return [_decode(item, resolve_class) for item in value]
    if not isinstance(value, dict):
        return value
    if "tuple" in value:
        return tuple(_decode(item, resolve_class) for item in value["tuple"])
    cls = resolve_class(value["dataclass"], object)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{value['dataclass']} is not a dataclass")
    return cls(**{name: _decode(item, resolve_class) for name, item in value["fields"].items()})


def module_spec(module) -> dict:
    """How to build a module like this one: its class and constructor arguments (see the module docstring)."""
    import torch

    name = class_path(module)
    if isinstance(module, torch.nn.Sequential):
        return {"class": name, "children": [module_spec(child) for child in module]}
    arguments = {}
    for argument, parameter in list(inspect.signature(type(module).__init__).parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{name}: constructor takes *{argument}; only named arguments can be stored")
        if hasattr(module, argument):
            arguments[argument] = _encode(getattr(module, argument), parameter.default, f"{name}({argument})")
        elif parameter.default is parameter.empty:
            raise TypeError(f"{name}: keeps no attribute {argument!r} for its constructor argument of that name")
        # else: an argument it does not keep (device=, dtype=) is left at its default
    return {"class": name, "arguments": arguments}


def build_module(spec: dict, resolve_class: ResolveClass):
    """A new module from a spec (random initial weights: load a state dict into it)."""
    import torch

    cls = resolve_class(spec["class"], torch.nn.Module)
    if "children" in spec:
        return cls(*[build_module(child, resolve_class) for child in spec["children"]])
    return cls(**{name: _decode(value, resolve_class) for name, value in spec["arguments"].items()})


def check_rebuilds(module, spec: dict, resolve_class: ResolveClass) -> None:
    """TypeError unless the spec rebuilds a module with the same state-dict names and shapes."""
    import torch

    with torch.device("meta"):
        rebuilt = build_module(spec, resolve_class)
    want = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    got = {key: tuple(value.shape) for key, value in rebuilt.state_dict().items()}
    if want != got:
        differ = sorted(set(want.items()) ^ set(got.items()))[:5]
        raise TypeError(f"{spec['class']}: rebuilding it from its constructor arguments {spec.get('arguments')} "
                        f"gives other weights (first differences: {differ}); keep each constructor argument "
                        "as an attribute of the same name")


def load_module(spec: dict, state: dict, training: bool, resolve_class: ResolveClass):
    """The module a spec builds, holding the given state dict tensors (their dtypes kept)."""
    import torch

    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's seed alone
        module = build_module(spec, resolve_class)
    module.load_state_dict(state, assign=True)
    return module.train(training)
