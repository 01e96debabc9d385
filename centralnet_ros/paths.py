"""
Where data, caches and the installed share folder live.

Nothing here reads a dataset: it only answers "where".  Every location can be
overridden, in this order: an explicit argument, an environment variable, a default.
"""
from __future__ import annotations

import os
from pathlib import Path
import sys

DATA_ROOT_ENV = 'CENTRALNET_DATA_ROOT'
CACHE_ENV = 'CENTRALNET_CACHE'
PACKAGE = 'centralnet_ros'

_REPO_ROOT = Path(__file__).resolve().parent.parent


def user_data_dir() -> Path:
    """
    Return the per-user data folder: ``$XDG_DATA_HOME/centralnet_ros``, else ``~/.local/share/centralnet_ros``.

    As the XDG base directory specification says, a relative ``$XDG_DATA_HOME`` is ignored.
    """
    xdg = os.environ.get('XDG_DATA_HOME', '')
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / '.local' / 'share'
    return base / PACKAGE


DATA_ROOT_DEFAULT = f'${DATA_ROOT_ENV}, else $XDG_DATA_HOME/{PACKAGE} (~/.local/share/{PACKAGE})'


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """
    Return the folder holding the datasets (``mnist/``, ``fsdd/``, ``avletters/``, ...).

    ``explicit`` > ``$CENTRALNET_DATA_ROOT`` > the per-user data folder (:func:`user_data_dir`).
    Never a path relative to a source checkout: a development layout is set explicitly
    (``.ci/run`` exports ``CENTRALNET_DATA_ROOT``).
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return user_data_dir()


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the folder for derived arrays (built AV-MNIST, features): never inside the repository or data root."""
    if explicit is not None:
        path = Path(explicit).expanduser()
    else:
        env = os.environ.get(CACHE_ENV)
        base = Path(env) if env else Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / PACKAGE
        path = base.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def share_dir() -> Path:
    """
    ``share/centralnet_ros`` (launch/, config/, models/).

    A source checkout (editable install) uses its own folders; otherwise the ament
    index when ROS is sourced (colcon install), else ``sys.prefix/share`` (where
    ``pip install`` puts data_files).
    """
    if (_REPO_ROOT / 'package.xml').is_file() and (_REPO_ROOT / 'config').is_dir():
        return _REPO_ROOT
    try:  # pragma: no cover - needs a sourced ROS 2 workspace
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - ament_index is optional
        pass
    return Path(sys.prefix) / 'share' / PACKAGE


def models_dir() -> Path:
    return share_dir() / 'models'


def config_dir() -> Path:
    return share_dir() / 'config'
