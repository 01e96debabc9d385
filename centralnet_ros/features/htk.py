"""
HTK-compatible MFCC front end (``MFCC_E_D``); HTK parameter files are read by :mod:`centralnet_ros.data.htk`.

AVLetters ships its audio only as HTK feature files (``MFCC_E_D``: 12 cepstra c1..c12,
log energy E, then the 13 regression deltas; 26 floats per frame every 20 ms).  A
model trained on them can only run on a robot's microphone if the live waveform goes
through the same front end.  This module re-implements HTK's front end (HTK Book
ch. 5, HSigP/HParm) in numpy:

per frame (``window_length_s`` samples every ``frame_period_s``, frames start at
sample 0, no padding; ``T = 1 + (N - window) // hop``):

1. optional DC removal of the frame (``ZMEANSOURCE``);
2. raw energy ``e = sum(s**2)`` taken here, before pre-emphasis and windowing
   (``RAWENERGY=T``);
3. pre-emphasis HTK style, inside the frame: ``s[i] -= k s[i-1]`` for i >= 1 and
   ``s[0] *= 1 - k`` (``PREEMCOEF``);
4. Hamming window ``0.54 - 0.46 cos(2 pi i / (N - 1))``;
5. FFT zero-padded to the next power of two, magnitude ``|X|`` (``USEPOWER=F``);
6. triangular filters equally spaced on HTK's mel scale ``1127 ln(1 + f / 700)``
   between ``LOFREQ`` and ``HIFREQ`` (default 0 .. Nyquist; DC and Nyquist bins are
   never used), built exactly as HTK's ``InitFBank`` (each FFT bin split between the
   two channels around it);
7. ``ln(max(fbank, 1.0))`` (HTK's mel floor, in 16-bit sample units);
8. DCT-II ``c_j = sqrt(2/N) sum_k f_k cos(pi j (k - 0.5) / N)``, j = 1..12;
9. liftering ``c_j *= 1 + L/2 sin(pi j / L)`` (``CEPLIFTER``; HTK recipe L = 22);
10. ``E = ln(e)``.

per utterance: energy normalisation (``ENORMALISE=T``, HTK's default):
``E <- 1 - (max E - max(E, max E - SILFLOOR ln10 / 10)) * ESCALE``; then the
regression deltas ``d_t = sum_th th (c_{t+th} - c_{t-th}) / (2 sum_th th^2)``
(``DELTAWINDOW=2``).

What the real AVLetters files show (checked on all 780 by ``benchmarks/htk_parity.py``
and ``test/test_avletters.py``):

* ``max E == 1.0`` exactly in every file: the energy **is normalised** over each
  utterance (``ENORMALISE=T``).  This is not streamable (the maximum is only known at
  the end); :class:`HTKStream` therefore refuses it, and the runtime computes the
  static frames as a stream (:class:`HTKStaticStream`) and finishes a window with
  :func:`features_from_static`, which is what :func:`mfcc_e_d` does in one call.
  Two files (A2_Kate, B1_Faye) have ``E < 1 - 5 ln10 * 0.1 = -0.151``, which HTK's
  default ``SILFLOOR=50`` dB with ``ESCALE=0.1`` cannot produce, so the original
  floor was lower (or ESCALE larger); we keep HTK's defaults, which affects at most
  the deepest-silence frames.
* The deltas equal the ``DELTAWINDOW=2`` regression of the statics (to 3e-7) in the
  interior, but at the first two and last two frames they are **simple differences**
  ``c_{t+1} - c_t`` (t < 2) and ``c_t - c_{t-1}`` (t >= T - 2): HTK 1.5 behaviour,
  ``V1COMPAT=T`` in HTK 2/3.  ``delta_edge='simple'`` reproduces it; ``'replicate'``
  is HTK 3's default (first/last frame replicated).  Sequences of at most
  ``2 * DELTAWINDOW`` frames use replication either way, as HParm's ``AddDiffs`` does.

What the files cannot show exactly, measured against raw speech run through this
front end (``benchmarks/results/htk_parity.md``: espeak-ng letters, EmoDB, FSDD):

* liftering: with ``CEPLIFTER=22`` every source's c1..c12 spread ~20x AVLetters'; with
  no liftering the spread falls ~1/j as AVLetters' does: AVLetters is unliftered;
* pre-emphasis: none (0.0) is closer than 0.97 for all three sources (c1, the tilt);
* sample rate: not recorded in the files; 22.05 kHz is kept (AVLetters' audio rate as
  we recall it from Matthews et al. 2002, not verifiable offline); the rate sweep is
  not decisive;
* all sources still spread ~2x more per coefficient than AVLetters, a gap no standard
  HTK setting closes; it cannot be attributed without AVLetters' raw audio.

:data:`AVLETTERS_CONFIG` collects these choices; :class:`HTKConfig`'s defaults stay HTK's.

Sample units: HTK works on 16-bit integer samples, and its mel floor (1.0) and energy
are in those units.  Integer waveforms are used as they are; float waveforms are taken
to be in [-1, 1] and multiplied by ``input_scale`` (32768).  c1..c12 and normalised E
do not depend on the gain except through the floor.

Latency: static frame t is complete ``window_length_s`` after its first sample; its
delta needs static frames up to t + DELTAWINDOW, so :class:`HTKStream` emits frame t
``DELTAWINDOW * frame_period_s`` (40 ms) after static frame t is complete, i.e.
65 ms after frame t starts with the defaults; the last two frames come at ``flush()``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

from centralnet_ros.features.audio import resample_audio
from centralnet_ros.features.resample import fourier_resample
import numpy as np

__all__ = [
    'HTKConfig', 'AVLETTERS_CONFIG',
    'mel_scale', 'inverse_mel_scale', 'mel_filterbank', 'dct_matrix', 'lifter_weights',
    'frame_signal', 'hamming_window', 'log_filterbank', 'static_features', 'static_features_from_frames',
    'normalise_log_energy', 'deltas', 'add_deltas', 'features_from_static', 'mfcc_e_d',
    'HTKStaticStream', 'HTKStream', 'mfcc_to_model_input', 'speech_model_input',
]


# --------------------------------------------------------------------------- config

@dataclasses.dataclass(frozen=True)
class HTKConfig:
    """
    HTK front-end parameters (HTK's configuration variable in brackets).

    The defaults are HTK 3's MFCC recipe (HTK Book ch. 5 / the tutorial's config) at
    the 20 ms frame period of AVLetters; :data:`AVLETTERS_CONFIG` holds the values that
    AVLetters' own files show (see the module docstring).
    """

    sample_rate: int = 22050          # Hz the analysis runs at (SOURCERATE = 1e7 / rate)
    window_length_s: float = 0.025    # WINDOWSIZE (AVLetters' is not recorded; 25 ms is HTK's usual)
    frame_period_s: float = 0.020     # TARGETRATE (200000 x 100 ns in every AVLetters header)
    preemph: float = 0.97             # PREEMCOEF
    use_hamming: bool = True          # USEHAMMING
    zero_mean: bool = False           # ZMEANSOURCE, per frame (ignored by HTK when V1COMPAT=T)
    num_chans: int = 26               # NUMCHANS (HTK default 20; 26 is the HTK Book's MFCC recipe)
    num_ceps: int = 12                # NUMCEPS
    cep_lifter: int = 22              # CEPLIFTER (0 = no liftering)
    low_freq: float | None = None     # LOFREQ in Hz (None = 0)
    high_freq: float | None = None    # HIFREQ in Hz (None = Nyquist)
    use_power: bool = False           # USEPOWER
    mel_floor: float = 1.0            # HSigP's melfloor on the filterbank output
    raw_energy: bool = True           # RAWENERGY
    energy_normalise: bool = True     # ENORMALISE (utterance-level, not streamable)
    energy_scale: float = 0.1         # ESCALE
    silence_floor_db: float = 50.0    # SILFLOOR
    energy_floor: float = 1.0         # e floored to this before ln (HTK: LZERO for e < MINLARG)
    delta_window: int = 2             # DELTAWINDOW
    delta_edge: Literal['simple', 'replicate'] = 'replicate'  # 'simple' = V1COMPAT (AVLetters)
    input_scale: float = 32768.0      # float waveform in [-1, 1] -> 16-bit sample units

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f'HTKConfig: {msg}')
        if self.sample_rate <= 0:
            bad(f'sample_rate must be positive, got {self.sample_rate}')
        if not 0 < self.frame_period_s <= self.window_length_s * 4:
            bad(f'frame_period_s={self.frame_period_s} must be positive (and not absurdly '
                f'larger than window_length_s={self.window_length_s})')
        if self.window_samples < 2:
            bad(f'window_length_s={self.window_length_s} gives {self.window_samples} samples '
                f'at {self.sample_rate} Hz; need at least 2')
        if self.hop_samples < 1:
            bad(f'frame_period_s={self.frame_period_s} is shorter than one sample at {self.sample_rate} Hz')
        if not 0.0 <= self.preemph < 1.0:
            bad(f'preemph must be in [0, 1), got {self.preemph}')
        if self.num_chans < 2:
            bad(f'num_chans must be >= 2, got {self.num_chans}')
        if not 1 <= self.num_ceps < self.num_chans:
            bad(f'num_ceps must be in [1, num_chans), got {self.num_ceps} with num_chans={self.num_chans}')
        if self.cep_lifter < 0:
            bad(f'cep_lifter must be >= 0, got {self.cep_lifter}')
        nyquist = self.sample_rate / 2
        lo = 0.0 if self.low_freq is None else self.low_freq
        hi = nyquist if self.high_freq is None else self.high_freq
        if not 0.0 <= lo < hi <= nyquist:
            bad(f'need 0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz), got {lo} .. {hi}')
        if self.mel_floor <= 0 or self.energy_floor <= 0:
            bad('mel_floor and energy_floor must be positive')
        if self.energy_scale <= 0 or self.silence_floor_db <= 0:
            bad('energy_scale and silence_floor_db must be positive')
        if self.delta_window < 1:
            bad(f'delta_window must be >= 1, got {self.delta_window}')
        if self.delta_edge not in ('simple', 'replicate'):
            bad(f"delta_edge must be 'simple' or 'replicate', got {self.delta_edge!r}")
        if self.input_scale <= 0:
            bad(f'input_scale must be positive, got {self.input_scale}')

    # HTK computes frame sizes as (int)(duration / sample period).
    @property
    def window_samples(self) -> int:
        return int(math.floor(self.window_length_s * self.sample_rate + 1e-6))

    @property
    def hop_samples(self) -> int:
        return int(math.floor(self.frame_period_s * self.sample_rate + 1e-6))

    @property
    def fft_size(self) -> int:
        n = 2
        while n < self.window_samples:
            n *= 2
        return n

    @property
    def num_static(self) -> int:
        """c1..c_numceps plus E."""
        return self.num_ceps + 1

    @property
    def num_features(self) -> int:
        """Statics plus deltas (26 for AVLetters)."""
        return 2 * self.num_static

    @property
    def lookahead_frames(self) -> int:
        """Return how many static frames a delta needs after its own frame."""
        return self.delta_window

    @property
    def latency_s(self) -> float:
        """From the first sample of frame t to the moment :class:`HTKStream` can emit it."""
        return self.window_length_s + self.delta_window * self.frame_period_s


AVLETTERS_CONFIG = HTKConfig(preemph=0.0, cep_lifter=0, delta_edge='simple')
"""The front end for AVLetters' ``Audio/mfcc/Clean/*.mfcc`` (22.05 kHz, 25 ms / 20 ms,
no pre-emphasis, 26 channels, 12 unliftered cepstra, raw log energy normalised per
utterance, simple-difference delta edges); see the module docstring for the evidence."""


# ------------------------------------------------------------------ building blocks

def mel_scale(freq_hz: np.ndarray | float) -> np.ndarray:
    """Map Hz onto HTK's mel scale ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(freq_hz, dtype=np.float64) / 700.0)


def inverse_mel_scale(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`mel_scale`: ``700 (exp(m / 1127) - 1)``."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def mel_filterbank(config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    Build HTK's triangular mel filterbank as a ``(num_chans, fft_size // 2 + 1)`` weight matrix.

    Follows ``InitFBank``: centre frequencies ``cf_c = mlo + c (mhi - mlo) / (num_chans + 1)``
    on the mel scale (c = 1..num_chans + 1, the last one being the upper edge); FFT bins
    ``klo..khi`` (never DC, never Nyquist) are each split between the channel below
    (weight ``(cf_{c+1} - mel_k) / (cf_{c+1} - cf_c)``) and the one above (the rest).
    """
    n_fft = config.fft_size
    half = n_fft // 2
    sr = float(config.sample_rate)
    n_ch = config.num_chans
    bin_mel = mel_scale(np.arange(half + 1) * sr / n_fft)            # (half + 1,)
    # HTK 1-based FFT index k <-> 0-based bin k - 1; default passband k = 2 .. N/2.
    klo, khi = 2, half
    mlo, mhi = 0.0, float(mel_scale(sr / 2))
    if config.low_freq is not None:
        mlo = float(mel_scale(config.low_freq))
        klo = max(2, int(config.low_freq * n_fft / sr + 2.5))
    if config.high_freq is not None:
        mhi = float(mel_scale(config.high_freq))
        khi = min(half, int(config.high_freq * n_fft / sr + 0.5))
    cf = mlo + np.arange(1, n_ch + 2) * (mhi - mlo) / (n_ch + 1)     # cf[c-1] = HTK cf[c]
    weights = np.zeros((n_ch, half + 1))
    for k in range(klo, khi + 1):
        b = k - 1
        m = bin_mel[b]
        chan = int(np.searchsorted(cf, m, side='left')) + 1           # first HTK c with cf[c] >= m
        lo_chan = chan - 1                                            # 0 .. n_ch (+1 beyond mhi)
        if lo_chan > n_ch:
            continue                                                  # above HIFREQ: unused
        if lo_chan > 0:
            w = (cf[lo_chan] - m) / (cf[lo_chan] - cf[lo_chan - 1])
        else:
            w = (cf[0] - m) / (cf[0] - mlo)
        if lo_chan > 0:
            weights[lo_chan - 1, b] += w
        if lo_chan < n_ch:
            weights[lo_chan, b] += 1.0 - w
    return weights


def dct_matrix(num_chans: int, num_ceps: int) -> np.ndarray:
    """``(num_ceps, num_chans)``: HTK's ``sqrt(2/N) cos(pi j (k - 0.5) / N)``, j = 1..num_ceps."""
    j = np.arange(1, num_ceps + 1)[:, None]
    k = np.arange(1, num_chans + 1)[None, :]
    return math.sqrt(2.0 / num_chans) * np.cos(np.pi * j * (k - 0.5) / num_chans)


def lifter_weights(num_ceps: int, cep_lifter: int) -> np.ndarray:
    """``(num_ceps,)``: ``1 + L/2 sin(pi j / L)`` for j = 1..num_ceps; ones when L = 0."""
    if cep_lifter <= 0:
        return np.ones(num_ceps)
    j = np.arange(1, num_ceps + 1)
    return 1.0 + cep_lifter / 2.0 * np.sin(np.pi * j / cep_lifter)


def hamming_window(n: int) -> np.ndarray:
    """Return HTK's (symmetric) Hamming window of ``n`` samples."""
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(n) / (n - 1))


def frame_signal(samples: np.ndarray, *, window: int, hop: int) -> np.ndarray:
    """``(N,)`` -> ``(T, window)`` frames starting at 0, hop apart, no padding (a view)."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f'expected a mono waveform of shape (N,), got shape {samples.shape}')
    if samples.shape[0] < window:
        return np.zeros((0, window), dtype=samples.dtype)
    n_frames = 1 + (samples.shape[0] - window) // hop
    return np.lib.stride_tricks.sliding_window_view(samples, window)[::hop][:n_frames]


class _FrontEnd:
    """Precomputed matrices for one config (cached per config)."""

    def __init__(self, config: HTKConfig) -> None:
        self.config = config
        self.window = hamming_window(config.window_samples) if config.use_hamming else None
        self.fbank = mel_filterbank(config)                                   # (C, F)
        lift = lifter_weights(config.num_ceps, config.cep_lifter)
        self.dct = dct_matrix(config.num_chans, config.num_ceps) * lift[:, None]  # (J, C)


_FRONT_ENDS: dict[HTKConfig, _FrontEnd] = {}


def _front_end(config: HTKConfig) -> _FrontEnd:
    fe = _FRONT_ENDS.get(config)
    if fe is None:
        fe = _FRONT_ENDS[config] = _FrontEnd(config)
    return fe


def _to_htk_units(waveform: np.ndarray, config: HTKConfig) -> np.ndarray:
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f'expected a mono waveform of shape (N,), got shape {x.shape}')
    if x.dtype.kind in 'iu':
        return x.astype(np.float64)
    if x.dtype.kind != 'f':
        raise ValueError(f'expected an integer or float waveform, got dtype {x.dtype}')
    x = x.astype(np.float64) * config.input_scale
    if not np.all(np.isfinite(x)):
        raise ValueError('waveform contains NaN or infinite samples')
    return x


def _analyse(frames: np.ndarray, config: HTKConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frames -> (log filterbank (T, C), energy (T,)) following HParm's ConvertFrame."""
    fe = _front_end(config)
    s = np.array(frames, dtype=np.float64)                                    # (T, W) copy
    if s.ndim != 2 or s.shape[1] != config.window_samples:
        raise ValueError(f'expected frames of shape (T, {config.window_samples}), got {s.shape}')
    if config.zero_mean:
        s -= s.mean(axis=1, keepdims=True)
    energy = np.einsum('tw,tw->t', s, s)                                      # raw energy (T,)
    if config.preemph > 0:
        s[:, 1:] -= config.preemph * s[:, :-1].copy()
        s[:, 0] *= 1.0 - config.preemph
    if fe.window is not None:
        s *= fe.window
    if not config.raw_energy:
        energy = np.einsum('tw,tw->t', s, s)
    spec = np.abs(np.fft.rfft(s, n=config.fft_size, axis=1))                 # (T, F)
    if config.use_power:
        spec = spec * spec
    return np.log(np.maximum(spec @ fe.fbank.T, config.mel_floor)), energy   # (T, C), (T,)


def log_filterbank(frames: np.ndarray, config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    HTK log mel filterbank (``FBANK``), the input of the DCT.

    ``(T, window)`` frames in 16-bit sample units -> ``(T, num_chans)``.
    """
    return _analyse(frames, config)[0]


def static_features_from_frames(frames: np.ndarray, config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    ``(T, window)`` frames in 16-bit sample units -> ``(T, num_ceps + 1)`` [c1..c12, ln e].

    The energy is the raw log energy (not normalised).
    """
    fbank, energy = _analyse(frames, config)
    ceps = fbank @ _front_end(config).dct.T                                   # (T, J) liftered
    log_e = np.log(np.maximum(energy, config.energy_floor))[:, None]          # (T, 1)
    return np.concatenate([ceps, log_e], axis=1)


def static_features(waveform: np.ndarray, *, sample_rate: int,
                    config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    Mono waveform -> ``(T, num_ceps + 1)`` static frames [c1..c12, raw ln e] (float64).

    ``waveform`` at ``sample_rate`` is first resampled (polyphase, band-limited) to
    ``config.sample_rate`` if the two differ.
    """
    x = _to_htk_units(waveform, config)
    if int(sample_rate) != config.sample_rate:
        x = resample_audio(x, orig_sample_rate=int(sample_rate),
                           new_sample_rate=config.sample_rate).astype(np.float64)
    frames = frame_signal(x, window=config.window_samples, hop=config.hop_samples)
    return static_features_from_frames(frames, config)


def normalise_log_energy(log_energy: np.ndarray, *, silence_floor_db: float = 50.0,
                         energy_scale: float = 0.1) -> np.ndarray:
    """
    Apply HTK's ``NormaliseLogEnergy`` over one utterance: max becomes 1.0.

    ``E <- 1 - (max - max(E, max - silence_floor_db ln(10) / 10)) * energy_scale``.
    """
    e = np.asarray(log_energy, dtype=np.float64)
    if e.size == 0:
        return e.copy()
    top = e.max()
    floor = top - silence_floor_db * math.log(10.0) / 10.0
    return 1.0 - (top - np.maximum(e, floor)) * energy_scale


def _delta_rows(block: np.ndarray, base: int, targets: np.ndarray, total: int | None,
                window: int, edge: str) -> np.ndarray:
    """
    Deltas for the absolute frame indices ``targets``.

    ``block`` holds the statics of frames ``base .. base + len(block) - 1`` of a
    sequence of ``total`` frames (None = not known yet; then every target must have
    its ``window`` successors in ``block``).
    """
    targets = np.asarray(targets, dtype=np.int64)
    out = np.zeros((targets.size, block.shape[1]))
    if targets.size == 0:
        return out
    last = base + block.shape[0] - 1 if total is None else total - 1

    def at(idx: np.ndarray) -> np.ndarray:
        return block[np.clip(idx, 0, last) - base]

    short = total is not None and total <= 2 * window
    denom = 2.0 * sum(th * th for th in range(1, window + 1))
    reg = np.zeros_like(out)
    for th in range(1, window + 1):
        reg += th * (at(targets + th) - at(targets - th))
    out[:] = reg / denom
    if edge == 'simple' and not short:
        head = targets < window
        if np.any(head):
            out[head] = at(targets[head] + 1) - at(targets[head])
        if total is not None:
            tail = targets >= total - window
            if np.any(tail):
                out[tail] = at(targets[tail]) - at(targets[tail] - 1)
    return out


def deltas(static: np.ndarray, *, window: int = 2,
           edge: Literal['simple', 'replicate'] = 'replicate') -> np.ndarray:
    """
    ``(T, D)`` -> ``(T, D)`` HTK regression deltas over +-``window`` frames.

    ``edge='replicate'``: the first/last frame is replicated to fill the window (HTK 3).
    ``edge='simple'``: the first/last ``window`` frames use simple differences (HTK 1.5,
    ``V1COMPAT=T``; what AVLetters' files contain).  Sequences of at most ``2 window``
    frames are replicated in both modes, as in HTK.
    """
    static = np.asarray(static, dtype=np.float64)
    if static.ndim != 2:
        raise ValueError(f'expected static features of shape (T, D), got {static.shape}')
    if edge not in ('simple', 'replicate'):
        raise ValueError(f"edge must be 'simple' or 'replicate', got {edge!r}")
    t = static.shape[0]
    return _delta_rows(static, 0, np.arange(t), t, window, edge)


def add_deltas(static: np.ndarray, *, window: int = 2,
               edge: Literal['simple', 'replicate'] = 'replicate') -> np.ndarray:
    """``(T, D)`` -> ``(T, 2 D)``: statics followed by their deltas (HTK's ``_D`` layout)."""
    static = np.asarray(static, dtype=np.float64)
    return np.concatenate([static, deltas(static, window=window, edge=edge)], axis=1)


def features_from_static(static: np.ndarray, config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    Finish one utterance: ``(T, 13)`` statics with raw ln e -> ``(T, 26)`` float32 ``MFCC_E_D``.

    The energy is normalised over these T frames if ``config.energy_normalise``.
    """
    static = np.array(static, dtype=np.float64)
    if static.ndim != 2 or static.shape[1] != config.num_static:
        raise ValueError(f'expected static features of shape (T, {config.num_static}), got {static.shape}')
    if config.energy_normalise:
        static[:, -1] = normalise_log_energy(static[:, -1], silence_floor_db=config.silence_floor_db,
                                             energy_scale=config.energy_scale)
    return add_deltas(static, window=config.delta_window, edge=config.delta_edge).astype(np.float32)


def mfcc_e_d(waveform: np.ndarray, *, sample_rate: int,
             config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    Mono waveform -> ``(T, 26)`` float32 ``MFCC_E_D`` frames, as AVLetters' files.

    Integer samples are 16-bit units; float samples are in [-1, 1].  ``T = 1 + (N -
    window) // hop`` at ``config.sample_rate`` (0 frames if the clip is shorter than
    one window).
    """
    return features_from_static(static_features(waveform, sample_rate=sample_rate, config=config), config)


# ----------------------------------------------------------------------- streaming

class HTKStaticStream:
    """
    Static frames ``(n, 13)`` [c1..c12, raw ln e] from a waveform pushed in arbitrary chunks.

    A frame is emitted as soon as its window is complete (no lookahead); the result
    equals :func:`static_features` on the concatenated signal.  Chunks must be at
    ``config.sample_rate``.
    """

    def __init__(self, config: HTKConfig = AVLETTERS_CONFIG, *, sample_rate: int | None = None) -> None:
        if sample_rate is not None and int(sample_rate) != config.sample_rate:
            raise ValueError(f'HTKStaticStream analyses at config.sample_rate={config.sample_rate} Hz '
                             f'but was given sample_rate={sample_rate}; resample the microphone stream '
                             f'first or build HTKConfig(sample_rate={sample_rate})')
        self.config = config
        self._buffer = np.zeros(0, dtype=np.float64)
        self.frames_emitted = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add samples (same units as :func:`mfcc_e_d`); return the new static frames."""
        x = _to_htk_units(np.asarray(chunk).reshape(-1), self.config)
        buf = np.concatenate([self._buffer, x])
        win, hop = self.config.window_samples, self.config.hop_samples
        frames = frame_signal(buf, window=win, hop=hop)
        n = frames.shape[0]
        out = static_features_from_frames(frames, self.config) if n else np.zeros((0, self.config.num_static))
        self._buffer = buf[n * hop:]
        self.frames_emitted += n
        return out

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float64)
        self.frames_emitted = 0


class HTKStream:
    """
    Streaming ``MFCC_E_D`` with unnormalised energy.

    ``push(chunk) -> (n, 26)``, then ``flush() -> (m, 26)`` at the end of the stream.

    Emits exactly the frames of ``mfcc_e_d(signal, config=config)`` for the whole signal.
    Frame t leaves :meth:`push` once static frame ``t + delta_window`` exists (and at
    least ``2 delta_window + 1`` frames have been seen, so the short-sequence rule cannot
    apply any more): a lookahead of 2 frames = 40 ms after its window is complete; the
    last ``delta_window`` frames need :meth:`flush` (their edge rule depends on the end).

    Energy normalisation needs the utterance maximum, so a config with
    ``energy_normalise=True`` is refused: use :class:`HTKStaticStream` and
    :func:`features_from_static` on each window instead.
    """

    def __init__(self, config: HTKConfig, *, sample_rate: int | None = None) -> None:
        if config.energy_normalise:
            raise ValueError('HTKStream cannot normalise energy on the fly (ENORMALISE needs the '
                             'maximum over the whole utterance); pass a config with '
                             'energy_normalise=False, or stream HTKStaticStream and call '
                             'features_from_static(window_statics, config) per window')
        self.config = config
        self._statics = HTKStaticStream(config, sample_rate=sample_rate)
        self._block = np.zeros((0, config.num_static))   # statics from absolute index _base
        self._base = 0
        self._next = 0                                    # next frame to emit
        self._seen = 0

    @property
    def lookahead_frames(self) -> int:
        return self.config.delta_window

    def _emit(self, upto: int, total: int | None) -> np.ndarray:
        targets = np.arange(self._next, upto)
        d = _delta_rows(self._block, self._base, targets, total, self.config.delta_window,
                        self.config.delta_edge)
        static = self._block[targets - self._base]
        self._next = upto
        keep_from = max(self._next - self.config.delta_window - 1, 0)   # keep what later deltas need
        if keep_from > self._base:
            self._block = self._block[keep_from - self._base:]
            self._base = keep_from
        return np.concatenate([static, d], axis=1).astype(np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        new = self._statics.push(chunk)
        if new.shape[0]:
            self._block = np.concatenate([self._block, new])
            self._seen += new.shape[0]
        w = self.config.delta_window
        if self._seen < 2 * w + 1:
            return np.zeros((0, self.config.num_features), dtype=np.float32)
        return self._emit(self._seen - w, None)

    def flush(self) -> np.ndarray:
        """Return the remaining frames, knowing the stream has ended; then the stream restarts empty."""
        out = self._emit(self._seen, self._seen)
        self.reset()
        return out

    def reset(self) -> None:
        self._statics.reset()
        self._block = np.zeros((0, self.config.num_static))
        self._base = self._next = self._seen = 0


# ------------------------------------------------------------ model input (training = runtime)

def mfcc_to_model_input(features: np.ndarray, *, num_frames: int = 24) -> np.ndarray:
    """
    ``(T, 26)`` ``MFCC_E_D`` frames -> ``(26, num_frames)`` float32 "MFCC image" (feature-major).

    Fourier resampling along time.  Used on AVLetters' files in training and on live
    audio by :func:`speech_model_input`.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f'expected MFCC frames of shape (T >= 1, D), got {features.shape}')
    return np.ascontiguousarray(fourier_resample(features.astype(np.float32), num_frames, axis=0).T)


def speech_model_input(waveform: np.ndarray, *, sample_rate: int, num_frames: int = 24,
                       config: HTKConfig = AVLETTERS_CONFIG) -> np.ndarray:
    """
    Turn a raw waveform at any ``sample_rate`` into the speech model's ``(26, num_frames)`` input.

    Resamples to ``config.sample_rate``, computes ``MFCC_E_D`` (energy normalised over
    this clip, as AVLetters' utterances) and Fourier-resamples to ``num_frames``: the
    same functions that turn AVLetters' files into training tensors.
    """
    features = mfcc_e_d(waveform, sample_rate=sample_rate, config=config)
    if features.shape[0] < 1:
        n = np.asarray(waveform).reshape(-1).shape[0]
        raise ValueError(f'clip of {n} samples at {sample_rate} Hz is shorter than one '
                         f'{config.window_length_s * 1e3:.0f} ms analysis window')
    return mfcc_to_model_input(features, num_frames=num_frames)
