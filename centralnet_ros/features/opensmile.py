"""
openSMILE functionals, an optional extra (``pip install 'centralnet_ros[opensmile]'``).

openSMILE (audEERING) is distributed under the audEERING Research License: free for
non-commercial research and education only, and the licence also binds models trained
on its features.  The project's own functionals (:mod:`.functionals`) are the default;
openSMILE's ComParE-2016 and eGeMAPSv02 functionals serve as the reference they are
measured against (``benchmarks/emodb_benchmark.py``).  A bundle whose pipeline is
``opensmile_functionals`` records :data:`OPENSMILE_LICENCE` in its manifest
(``Manifest.licence``), and loading it logs a warning.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ['OPENSMILE_LICENCE', 'FEATURE_SETS', 'OptionalDependencyError', 'OpenSmileFunctionals',
           'OpenSmileParams', 'opensmile_functionals_input']

OPENSMILE_LICENCE = ('openSMILE features (audEERING Research License: non-commercial research and education only; '
                     'it binds models trained on them). See https://github.com/audeering/opensmile/blob/master/LICENSE')
FEATURE_SETS = ('ComParE_2016', 'eGeMAPSv02', 'GeMAPSv01b', 'eGeMAPSv01b')


class OptionalDependencyError(ImportError):
    """An optional extra was requested but is not installed."""


def _import_opensmile():
    try:
        import opensmile
    except ImportError as exc:
        raise OptionalDependencyError(
            'openSMILE features were requested (pipeline opensmile_functionals), but the optional extra is not '
            "installed: pip install 'centralnet_ros[opensmile]' (or pip install opensmile). " + OPENSMILE_LICENCE
        ) from exc
    return opensmile


class OpenSmileFunctionals:
    """Utterance functionals of one openSMILE feature set: ``(n,)`` waveform -> ``(D,)`` float32."""

    def __init__(self, *, feature_set: str = 'ComParE_2016') -> None:
        if feature_set not in FEATURE_SETS:
            raise ValueError(f'openSMILE feature_set must be one of {FEATURE_SETS}, got {feature_set!r}')
        opensmile = _import_opensmile()
        self.feature_set = feature_set
        self._smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                                      feature_level=opensmile.FeatureLevel.Functionals)

    @property
    def names(self) -> list[str]:
        return list(self._smile.feature_names)

    def __call__(self, waveform: np.ndarray, *, sample_rate: int) -> np.ndarray:
        x = np.asarray(waveform, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f'openSMILE functionals take a mono waveform (n,), got {x.shape}')
        values = self._smile.process_signal(x, sample_rate).to_numpy()
        return np.nan_to_num(values.reshape(-1).astype(np.float32))


@dataclasses.dataclass
class OpenSmileParams:
    """Parameters of pipeline ``opensmile_functionals``; ``sample_rate``: the audio rate."""

    feature_set: str = 'ComParE_2016'
    sample_rate: int = 16000
    max_duration_s: float = 2.0       # the utterance from its start, cut here


_CACHE: dict[str, OpenSmileFunctionals] = {}


def opensmile_functionals_input(window, /, **params) -> np.ndarray:
    """
    Pipeline ``opensmile_functionals``: an audio window -> openSMILE functionals (optional extra).

    ``params``: :class:`OpenSmileParams`.  The window (at ``sample_rate``; the runtime
    resamples once) is averaged to mono and kept from its start up to ``max_duration_s``.
    Raises :class:`OptionalDependencyError` when openSMILE is not installed.
    """
    from centralnet_ros.features.pipelines import check_sample_rate
    p = OpenSmileParams(**params)
    smile = _CACHE.get(p.feature_set)
    if smile is None:
        smile = _CACHE[p.feature_set] = OpenSmileFunctionals(feature_set=p.feature_set)
    from centralnet_ros.features.audio import mono_samples
    check_sample_rate('opensmile_functionals', window, p.sample_rate)
    x = mono_samples(window)
    return smile(x[:int(round(p.max_duration_s * p.sample_rate))], sample_rate=int(p.sample_rate))
