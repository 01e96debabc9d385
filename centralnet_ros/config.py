"""
Strict configuration: YAML or dicts fill dataclasses; unknown keys and wrong types are errors.

Follows nanoGPT's configurator (refuse unknown keys and type changes) and timm's
habit of writing the resolved config next to the output (:func:`dump_yaml`).
YAML is always read with ``yaml.safe_load``.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
import shutil
import tempfile
import types
import typing
from typing import Any, BinaryIO, Callable, Mapping, TypeVar

import yaml

T = TypeVar('T')


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


def _type_name(tp: Any) -> str:
    return getattr(tp, '__name__', None) or str(tp).replace('typing.', '')


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert containers/dataclasses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):  # noqa: E721 (an identity test; pycodestyle < 2.11 flags it)
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f'{where}: {value!r} matches none of {_type_name(tp)}')
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f'{where}: {value!r} is not one of {list(args)}')
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}')
        return from_dict(tp, value, _where=where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {type(value).__name__} {value!r}')
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise ConfigError(f'{where}: expected {len(args)} items, got {len(value)}')
            return tuple(_coerce(v, a, f'{where}[{i}]') for i, (v, a) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f'{where}[{i}]') for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where}: expected a mapping, got {type(value).__name__}')
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, f'{where} key'): _coerce(v, vt, f'{where}.{k}') for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: expected a number, got {type(value).__name__} {value!r}')
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}: expected an integer, got {type(value).__name__} {value!r}')
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true/false, got {type(value).__name__} {value!r}')
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string, got {type(value).__name__} {value!r}')
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f'{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}')
    return value


def setting(default: Any = dataclasses.MISSING, *, doc: str, bounds: tuple[float, float] | None = None,
            choices: tuple[str, ...] | None = None, pattern: str | None = None, node: bool = True,
            dynamic: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """
    Declare a dataclass field once with its description and valid range.

    ``doc`` describes the field (``{task}`` / ``{input}`` are filled in where the field is
    repeated per task or input); ``bounds`` (inclusive), ``choices`` and ``pattern`` (a
    full-match regex) are checked by :func:`check_settings`, which the dataclass's
    ``__post_init__`` calls.  ``node`` marks a field that the ROS node exposes as a
    parameter (:mod:`centralnet_ros.node_params` derives its table from these fields);
    ``dynamic`` one that may change while running.
    """
    metadata = {'doc': doc, 'bounds': bounds, 'choices': choices, 'pattern': pattern, 'node': node,
                'dynamic': dynamic}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def setting_problem(field: dataclasses.Field, value: Any) -> str | None:
    """Return why ``value`` is outside ``field``'s declared bounds, choices or pattern (None when it is valid)."""
    import re
    meta = field.metadata
    if value is None or 'doc' not in meta:
        return None
    bounds, choices, pattern = meta['bounds'], meta['choices'], meta['pattern']
    if bounds is not None and isinstance(value, (int, float)) and not bounds[0] <= value <= bounds[1]:
        return f'{field.name} must be in [{bounds[0]:g}, {bounds[1]:g}], got {value}'
    if choices is not None and value not in choices:
        return f'{field.name} must be one of {", ".join(choices)}, got {value!r}'
    if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
        return f'{field.name} must match {pattern}, got {value!r}'
    return None


def check_settings(obj: Any, **values: Any) -> None:
    """
    Raise ValueError when a field of the dataclass ``obj`` is outside its declared range (see :func:`setting`).

    With ``values`` only those fields are checked, against the values given (a change
    about to be made, such as a new score threshold at run time); ``obj`` may then be
    the dataclass itself.
    """
    fields = {f.name: f for f in dataclasses.fields(obj)}
    name_of = (obj if isinstance(obj, type) else type(obj)).__name__
    items = values.items() if values else ((name, getattr(obj, name)) for name in fields)
    for name, value in items:
        if name not in fields:
            raise ValueError(f'{name_of} has no field {name!r}')
        problem = setting_problem(fields[name], value)
        if problem:
            raise ValueError(f'{name_of}: {problem}')


def from_dict(cls: type[T], data: Mapping[str, Any], *, _where: str = '') -> T:
    """
    Build dataclass ``cls`` from ``data``.

    Unknown keys, missing required keys and wrong types raise :class:`ConfigError` naming the key.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f'{cls!r} is not a dataclass')
    if not isinstance(data, Mapping):
        raise ConfigError(f'{_where or cls.__name__}: expected a mapping, got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f'{_where}.' if _where else ''
        raise ConfigError(
            f'unknown key(s) {", ".join(prefix + str(k) for k in unknown)} for {cls.__name__}; '
            f'known keys: {", ".join(sorted(fields))}')
    kwargs = {}
    for name, field in fields.items():
        where = f'{_where}.{name}' if _where else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], where)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f'missing required key {where} for {cls.__name__}')
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{_where or cls.__name__}: {exc}') from exc


def with_overrides(cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """
    Return ``cls``'s defaults with dotted-key ``overrides`` applied (``{'train.epochs': 3}``), filled strictly.

    The command-line ``--set KEY=VALUE`` of every command that runs an experiment lands
    here (or in a preset, which is the same mapping read from YAML); an unknown key is an
    error naming it.
    """
    data = to_dict(cls())
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return from_dict(cls, data)


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``key`` ``'a.b'`` (missing sections are made)."""
    parts = key.split('.')
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {} if p not in node or node[p] is None else node[p]
            if not isinstance(node[p], dict):
                raise ConfigError(f'override {key}: {p} is not a mapping')
        node = node[p]
    node[parts[-1]] = value


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict/list/scalars (tuples become lists), for YAML/JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file with the safe loader; a syntax error names the file."""
    path = Path(path)
    try:
        with path.open('r', encoding='utf-8') as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f'config file not found: {path}') from None
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from exc


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    data = load_yaml(path)
    if data is None:
        data = {}
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from exc


def current_umask() -> int:
    """Return the process umask (read without changing it for long)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """
    Call ``write(file)`` on a temporary file beside ``path``, fsync, then rename it into place.

    Readers never see a half-written file; on any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())   # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def replace_folder(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """
    Put the finished folder ``tmp`` at ``path`` (a sibling), replacing what was there as a whole.

    The old folder is moved aside first and removed last, so ``path`` never holds a mix of
    old and new files; ``tmp`` gets normal folder permissions (``mkdtemp`` makes 0700).
    """
    tmp, path = Path(tmp), Path(path)
    os.chmod(tmp, 0o777 & ~current_umask())
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f'.{path.name}.old-', dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_savez(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez`` of plain arrays (no object arrays, so loadable without pickle), atomically."""
    import numpy as np
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode('utf-8'))


def dump_yaml(obj: Any, path: str | os.PathLike) -> Path:
    """Write a (dataclass) config as YAML, atomically."""
    return atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))
