"""
Save and load bundles.

Nothing is unpickled: weights are safetensors, the manifest is YAML read with
``safe_load`` into dataclasses that refuse unknown keys.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
import shutil
import tempfile
from typing import TYPE_CHECKING

from centralnet_ros import paths
from centralnet_ros.bundle import validate
from centralnet_ros.bundle.manifest import FORMAT_VERSION, Manifest, migrate
from centralnet_ros.config import ConfigError, current_umask, from_dict, replace_folder, to_dict
import yaml

if TYPE_CHECKING:                     # torch is imported by what reads or writes weights, not by reading a manifest
    from centralnet_ros.fusion import FusionModel
    import torch

log = logging.getLogger(__name__)

MANIFEST = 'manifest.yaml'
WEIGHTS = 'model.safetensors'


class BundleError(ValueError):
    """A bundle is missing, from a newer format, inconsistent or does not match its weights."""


@dataclasses.dataclass
class Bundle:
    path: Path
    manifest: Manifest
    model: FusionModel | None            # None: a TaskModel that runs an exported graph (no weights loaded)

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels


def file_sha256(path: str | os.PathLike) -> str:
    """Return the sha256 (hex) of one file's bytes."""
    path = Path(path)
    h = hashlib.sha256()
    with path.open('rb') as fh:
        for block in iter(lambda: fh.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def bundle_sha256(path: str | os.PathLike) -> str:
    """
    Return the sha256 of a bundle: over its manifest and weights files (names and bytes).

    Two bundles with the same hash hold the same model, labels and pipelines; the
    runtime reports it per task, fine-tuned bundles record their base's.
    """
    path = resolve_bundle_path(path)
    h = hashlib.sha256()
    for name in (MANIFEST, WEIGHTS):
        f = path / name
        if not f.is_file():
            raise BundleError(f'{path}: {name} is missing')
        h.update(name.encode() + b'\0' + file_sha256(f).encode() + b'\0')
    return h.hexdigest()


def save_bundle(path: str | os.PathLike, model: FusionModel, manifest: Manifest) -> Path:
    """
    Write ``path/`` atomically: built in a temporary sibling folder, then renamed into place.

    An existing bundle at ``path`` is replaced only once the new one is complete.
    """
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if dataclasses.asdict(manifest.model) != dataclasses.asdict(model.config):
        raise BundleError('the manifest describes a different architecture than the model being saved')
    tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', dir=path.parent))
    try:
        state = {k: v.detach().to('cpu').contiguous() for k, v in model.state_dict().items()}
        validate.check_finite(state)
        save_file(state, str(tmp / WEIGHTS), metadata={'format_version': str(FORMAT_VERSION)})
        manifest = dataclasses.replace(manifest, weights_sha256=file_sha256(tmp / WEIGHTS),
                                       model_sha256=validate.model_sha256(manifest.model),
                                       format_version=FORMAT_VERSION)
        text = yaml.safe_dump(to_dict(manifest), sort_keys=False, allow_unicode=True)
        (tmp / MANIFEST).write_text(text, encoding='utf-8')
        for f in (tmp / MANIFEST, tmp / WEIGHTS):
            os.chmod(f, 0o666 & ~current_umask())
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def resolve_bundle_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a bundle path, or a bare name looked up in the installed ``share/centralnet_ros/models``."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    candidate = paths.models_dir() / str(name_or_path)
    if candidate.exists():
        return candidate
    available = sorted(p.name for p in paths.models_dir().glob('*') if (p / MANIFEST).exists()) \
        if paths.models_dir().is_dir() else []
    raise BundleError(f'no model bundle at {path} and none named {str(name_or_path)!r} in {paths.models_dir()} '
                      f'(available: {", ".join(available) or "none"})')


def read_manifest(path: str | os.PathLike) -> Manifest:
    path = resolve_bundle_path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f'{path}: not a model bundle: {MANIFEST} is missing')
    try:
        validate.check_manifest_file(mpath)
        data = yaml.safe_load(mpath.read_text(encoding='utf-8'))
    except yaml.YAMLError as exc:
        raise BundleError(f'{mpath}: not valid YAML: {exc}') from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f'{mpath}: cannot read the manifest: {exc}') from exc
    if not isinstance(data, dict):
        raise BundleError(f'{mpath}: expected a mapping, got {type(data).__name__}')
    version = data.get('format_version')
    if not isinstance(version, int):
        raise BundleError(f'{mpath}: format_version missing or not an integer ({version!r})')
    if version > FORMAT_VERSION:
        raise BundleError(f'{mpath}: bundle format {version} is newer than this centralnet_ros reads '
                          f'({FORMAT_VERSION}); upgrade centralnet_ros')
    try:
        manifest = from_dict(Manifest, migrate(data))
        validate.check_sizes(manifest)
    except (ConfigError, ValueError, TypeError) as exc:
        raise BundleError(f'{mpath}: {exc}') from exc
    if manifest.model_sha256 and validate.model_sha256(data.get('model')) != manifest.model_sha256:
        raise BundleError(f'{mpath}: the model section differs from its checksum model_sha256 (edited or corrupted)')
    return manifest


def load_bundle(path: str | os.PathLike, *, device: str | torch.device = 'cpu', verify: bool = True) -> Bundle:
    """Rebuild the model from the manifest and load its safetensors weights (eval mode)."""
    from centralnet_ros.fusion import build_model
    from safetensors.torch import load_file
    path = resolve_bundle_path(path)
    manifest = read_manifest(path)
    wpath = path / WEIGHTS
    if not wpath.is_file():
        raise BundleError(f'{path}: {WEIGHTS} is missing')
    if verify and manifest.weights_sha256 and file_sha256(wpath) != manifest.weights_sha256:
        raise BundleError(f'{wpath}: checksum differs from the manifest (corrupted or replaced weights)')
    try:                                                   # every size against the file's own shapes, first
        validate.check_weight_shapes(manifest.model, validate.weight_shapes(wpath))
    except ValueError as exc:
        raise BundleError(f'{wpath}: {exc}') from exc
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise BundleError(f'{wpath}: cannot read safetensors weights: {exc}') from exc
    model = build_model(manifest.model)
    try:
        state = load_file(str(wpath))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise BundleError(f'{wpath}: cannot read safetensors weights: {exc}') from exc
    try:
        validate.check_finite(state)
    except ValueError as exc:
        raise BundleError(f'{wpath}: {exc}') from exc
    model.load_state_dict(state)
    model.to(device).eval()
    if manifest.licence:
        log.warning('bundle %s is bound by extra licence terms: %s', path, manifest.licence)
    return Bundle(path=path, manifest=manifest, model=model)
