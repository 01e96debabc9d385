"""
Audio features: resampling, framing, STFT, mel filterbank, log-mel, MFCC, noise.

Pure numpy / scipy, shared by training (``data/``) and the runtime.  Names and
conventions follow torchaudio (``sample_rate``, ``n_fft``, ``hop_length``,
``win_length``, ``n_mels``, ``f_min``, ``f_max``, ``mel_scale``, ``norm``; outputs are
``(..., freq, time)``), with one deliberate difference: ``center`` defaults to
``False``.  Without centring, frame ``t`` covers samples ``[t * hop_length,
t * hop_length + n_fft)`` of the signal and depends on nothing else, so a signal
streamed in chunks (:class:`StreamingLogMel`) gives exactly the frames of the whole
signal processed at once.  Nothing here normalises relative to a whole clip (no
per-clip mean / max / ``top_db``): a feature value depends only on the samples of its
own frame.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
import functools
import math
import warnings

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

__all__ = [
    'resample_audio', 'num_frames', 'stft_frames', 'get_window', 'stft', 'spectrogram',
    'hz_to_mel', 'mel_to_hz', 'mel_filterbank', 'mel_spectrogram', 'log_mel_spectrogram',
    'create_dct', 'mfcc', 'add_noise_at_snr', 'speed_perturb', 'fix_length', 'StreamingLogMel',
    'yin_pitch', 'PROSODY_NAMES', 'prosody_functionals', 'AUDIO_LAYOUTS', 'log_mel_functionals',
    'log_mel_model_input', 'LogMelParams', 'log_mel_input', 'mono_samples',
]


def resample_audio(waveform: np.ndarray, *, orig_sample_rate: int, new_sample_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis (float32 out)."""
    if orig_sample_rate <= 0 or new_sample_rate <= 0:
        raise ValueError(f'sample rates must be positive, got {orig_sample_rate} -> {new_sample_rate}')
    x = np.asarray(waveform, dtype=np.float32)
    if orig_sample_rate == new_sample_rate:
        return x
    ratio = Fraction(new_sample_rate, orig_sample_rate)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- framing

def _check_frame_params(n_fft: int, hop_length: int, win_length: int | None = None) -> int:
    if int(n_fft) != n_fft or n_fft < 1:
        raise ValueError(f'n_fft must be a positive integer, got {n_fft!r}')
    if int(hop_length) != hop_length or hop_length < 1:
        raise ValueError(f'hop_length must be a positive integer, got {hop_length!r}')
    win_length = n_fft if win_length is None else win_length
    if int(win_length) != win_length or not 1 <= win_length <= n_fft:
        raise ValueError(f'win_length must be an integer in [1, n_fft={n_fft}], got {win_length!r}')
    return int(win_length)


def num_frames(n_samples: int, *, n_fft: int, hop_length: int, center: bool = False) -> int:
    """
    Frames :func:`spectrogram` gives for ``n_samples`` samples.

    ``center=False``: ``1 + (n_samples - n_fft) // hop_length`` (0 if shorter than a window);
    ``center=True``: ``1 + n_samples // hop_length`` (torch.stft's count).
    """
    _check_frame_params(n_fft, hop_length)
    if center:
        return 1 + n_samples // hop_length
    return 0 if n_samples < n_fft else 1 + (n_samples - n_fft) // hop_length


def stft_frames(waveform: np.ndarray, *, n_fft: int, hop_length: int, center: bool = False,
                pad_mode: str = 'reflect') -> np.ndarray:
    """
    Overlapping frames of the last axis: ``(..., time)`` -> ``(..., n_frames, n_fft)``.

    A read-only strided view when ``center=False`` (no copy).  ``center=True`` pads
    ``n_fft // 2`` samples on both sides with ``pad_mode`` first, as torch.stft does
    (only for parity with torchaudio: centred frames depend on the clip's ends, so they
    cannot be streamed).
    """
    _check_frame_params(n_fft, hop_length)
    x = np.asarray(waveform)
    if x.ndim == 0:
        raise ValueError('waveform must have a time axis, got a scalar')
    if center:
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        x = np.pad(x, pad, mode=pad_mode)
    n = num_frames(x.shape[-1], n_fft=n_fft, hop_length=hop_length, center=False)
    if n == 0:
        return np.zeros(x.shape[:-1] + (0, n_fft), dtype=x.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)  # (..., T - n_fft + 1, n_fft)
    return windows[..., ::hop_length, :][..., :n, :]


def get_window(window: str | np.ndarray | None, *, win_length: int, n_fft: int) -> np.ndarray:
    """
    Analysis window of ``n_fft`` samples (float64).

    ``window``: ``'hann'`` (periodic, torch.hann_window's default), ``'hamming'``
    (periodic), ``'rectangular'`` / ``None``, or an array of ``win_length`` samples.  A
    window shorter than ``n_fft`` is zero-padded on both sides to the centre, as
    torch.stft does.
    """
    if window is None or (isinstance(window, str) and window in ('rectangular', 'boxcar', 'ones')):
        w = np.ones(win_length)
    elif isinstance(window, str):
        if window not in ('hann', 'hamming'):
            raise ValueError(f"unknown window {window!r}; expected 'hann', 'hamming', 'rectangular' or an array")
        w = signal.get_window(window, win_length, fftbins=True)
    else:
        w = np.asarray(window, dtype=np.float64)
        if w.shape != (win_length,):
            raise ValueError(f'window array must have shape ({win_length},), got {w.shape}')
    left = (n_fft - win_length) // 2
    return np.pad(w.astype(np.float64), (left, n_fft - win_length - left))


def stft(waveform: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None = None,
         window: str | np.ndarray | None = 'hann', center: bool = False,
         pad_mode: str = 'reflect') -> np.ndarray:
    """
    One-sided short-time Fourier transform: ``(..., time)`` -> complex64 ``(..., n_fft // 2 + 1, n_frames)``.

    Computed in float32 (as torchaudio does by default); each frame's transform
    depends only on that frame's samples.
    """
    win_length = _check_frame_params(n_fft, hop_length, win_length)
    frames = stft_frames(np.asarray(waveform, dtype=np.float32), n_fft=n_fft, hop_length=hop_length,
                         center=center, pad_mode=pad_mode)                      # (..., F, n_fft)
    w = get_window(window, win_length=win_length, n_fft=n_fft).astype(np.float32)
    spec = sp_fft.rfft(frames * w, n=n_fft, axis=-1)                             # (..., F, n_freqs) complex64
    return np.swapaxes(spec, -1, -2)                                            # (..., n_freqs, F)


def spectrogram(waveform: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None = None,
                window: str | np.ndarray | None = 'hann', power: float | None = 2.0,
                center: bool = False, pad_mode: str = 'reflect') -> np.ndarray:
    """
    |STFT| ** power, ``(..., time)`` -> ``(..., n_fft // 2 + 1, n_frames)``.

    ``power=2.0`` power spectrogram, ``1.0`` magnitude, ``None`` the complex STFT.
    Float32 out (complex64 for ``power=None``).
    """
    spec = stft(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                center=center, pad_mode=pad_mode)
    if power is None:
        return spec.astype(np.complex64)
    if power <= 0:
        raise ValueError(f'power must be positive or None, got {power}')
    if power == 2.0:
        return (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mag = np.abs(spec)
    return (mag if power == 1.0 else mag ** power).astype(np.float32)


# --------------------------------------------------------------------------- mel scale

def hz_to_mel(freq: np.ndarray | float, *, mel_scale: str = 'htk') -> np.ndarray:
    """Hertz -> mel.  ``'htk'``: 2595 log10(1 + f / 700); ``'slaney'``: linear below 1 kHz, log above."""
    f = np.asarray(freq, dtype=np.float64)
    if mel_scale == 'htk':
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if mel_scale == 'slaney':
        f_sp = 200.0 / 3
        min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
        min_log_mel = min_log_hz / f_sp
        return np.where(f >= min_log_hz,
                        min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                        f / f_sp)
    raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")


def mel_to_hz(mels: np.ndarray | float, *, mel_scale: str = 'htk') -> np.ndarray:
    """Mel -> hertz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if mel_scale == 'htk':
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if mel_scale == 'slaney':
        f_sp = 200.0 / 3
        min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
        min_log_mel = min_log_hz / f_sp
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)
    raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None, mel_scale: str = 'htk',
                   norm: str | None = None) -> np.ndarray:
    """
    Triangular mel filters, ``(n_fft // 2 + 1, n_mels)`` float32 (torchaudio.functional.melscale_fbanks).

    ``n_mels + 2`` points equally spaced in mel between ``f_min`` and ``f_max`` (default
    ``sample_rate / 2``) give the corners; filter ``m`` rises from point ``m`` to 1 at
    point ``m + 1`` and falls to 0 at point ``m + 2``.  ``norm='slaney'`` divides each
    triangle by half its width in Hz (constant area); ``None`` leaves peak height 1.
    Warns when a filter covers no frequency bin (too many ``n_mels`` for ``n_fft``).
    """
    if sample_rate <= 0:
        raise ValueError(f'sample_rate must be positive, got {sample_rate}')
    if n_mels < 1:
        raise ValueError(f'n_mels must be >= 1, got {n_mels}')
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f'need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, '
                         f'got f_min={f_min}, f_max={f_max}')
    if norm not in (None, 'slaney'):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    n_freqs = n_fft // 2 + 1
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)                        # torchaudio's grid
    m_pts = np.linspace(hz_to_mel(f_min, mel_scale=mel_scale), hz_to_mel(f_max, mel_scale=mel_scale), n_mels + 2)
    f_pts = mel_to_hz(m_pts, mel_scale=mel_scale)                                # (n_mels + 2,)
    f_diff = np.diff(f_pts)                                                     # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]                                # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))                                  # (n_freqs, n_mels)
    if norm == 'slaney':
        fb = fb * (2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels]))[None, :]
    empty = np.flatnonzero(fb.max(axis=0) == 0.0)
    if empty.size:
        warnings.warn(f'mel filters {empty.tolist()} cover no frequency bin (n_mels={n_mels} is too high '
                      f'for n_fft={n_fft} at sample_rate={sample_rate}); their output is always zero',
                      stacklevel=2)
    return fb.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _cached_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None,
                       mel_scale: str, norm: str | None) -> np.ndarray:
    fb = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max,
                        mel_scale=mel_scale, norm=norm)
    fb.setflags(write=False)
    return fb


def mel_spectrogram(waveform: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                    win_length: int | None = None, window: str | np.ndarray | None = 'hann',
                    power: float = 2.0, f_min: float = 0.0, f_max: float | None = None,
                    mel_scale: str = 'htk', norm: str | None = None,
                    center: bool = False) -> np.ndarray:
    """Mel-band energies, ``(..., time)`` -> ``(..., n_mels, n_frames)`` float32."""
    spec = spectrogram(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                       window=window, power=power, center=center)               # (..., n_freqs, F)
    fb = _cached_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, mel_scale, norm)  # (n_freqs, n_mels)
    return np.einsum('...ft,fm->...mt', spec, fb).astype(np.float32)


def log_mel_spectrogram(waveform: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                        floor: float = 1e-10, **kwargs) -> np.ndarray:
    """
    Natural log of :func:`mel_spectrogram`, floored: ``(..., n_mels, n_frames)`` float32.

    ``floor`` is an absolute constant, never relative to the clip.  ``kwargs`` go to
    :func:`mel_spectrogram` (``win_length``, ``window``, ``f_min``, ``f_max``, ...).
    """
    if floor <= 0:
        raise ValueError(f'floor must be positive, got {floor}')
    mel = mel_spectrogram(waveform, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                          n_mels=n_mels, **kwargs)
    return np.log(np.maximum(mel, floor)).astype(np.float32)


def create_dct(*, n_mfcc: int, n_mels: int, norm: str | None = 'ortho') -> np.ndarray:
    """DCT-II matrix ``(n_mels, n_mfcc)`` (torchaudio.functional.create_dct)."""
    if not 1 <= n_mfcc <= n_mels:
        raise ValueError(f'need 1 <= n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}')
    n = np.arange(n_mels, dtype=np.float64)
    k = np.arange(n_mfcc, dtype=np.float64)[:, None]
    dct = np.cos(np.pi / n_mels * (n + 0.5) * k)                                 # (n_mfcc, n_mels)
    if norm is None:
        dct *= 2.0
    elif norm == 'ortho':
        dct[0] *= 1.0 / math.sqrt(2.0)
        dct *= math.sqrt(2.0 / n_mels)
    else:
        raise ValueError(f"norm must be None or 'ortho', got {norm!r}")
    return dct.T.astype(np.float32)


def mfcc(waveform: np.ndarray, *, sample_rate: int, n_mfcc: int, n_mels: int, n_fft: int, hop_length: int,
         dct_norm: str | None = 'ortho', floor: float = 1e-10, **kwargs) -> np.ndarray:
    """
    MFCCs: DCT-II of the natural-log mel energies, ``(..., time)`` -> ``(..., n_mfcc, n_frames)``.

    Like ``torchaudio.transforms.MFCC(log_mels=True)`` but with an absolute floor in
    place of ``+1e-6``; no ``top_db`` clipping (that would be relative to the clip).
    """
    dct = create_dct(n_mfcc=n_mfcc, n_mels=n_mels, norm=dct_norm)               # (n_mels, n_mfcc)
    log_mel = log_mel_spectrogram(waveform, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                                  n_mels=n_mels, floor=floor, **kwargs)         # (..., n_mels, F)
    return np.einsum('...mt,mk->...kt', log_mel, dct).astype(np.float32)


# --------------------------------------------------------------------------- clips and noise

def fix_length(waveform: np.ndarray, *, length: int, mode: str = 'center') -> np.ndarray:
    """
    Zero-pad or crop the last axis to ``length`` samples.

    ``mode='center'``: the clip is centred (padding split evenly, cropping keeps the
    middle); ``'start'``: kept from its first sample, padded at the end.
    """
    x = np.asarray(waveform)
    n = x.shape[-1]
    if mode not in ('center', 'start'):
        raise ValueError(f"mode must be 'center' or 'start', got {mode!r}")
    if n >= length:
        start = (n - length) // 2 if mode == 'center' else 0
        return x[..., start:start + length]
    before = (length - n) // 2 if mode == 'center' else 0
    pad = [(0, 0)] * (x.ndim - 1) + [(before, length - n - before)]
    return np.pad(x, pad)


def add_noise_at_snr(waveform: np.ndarray, *, snr_db: float, rng: np.random.Generator,
                     signal_power: float | None = None) -> np.ndarray:
    """
    Add white Gaussian noise so that signal power / noise power = 10 ** (snr_db / 10).

    ``signal_power`` defaults to the mean square of ``waveform`` (over all its samples);
    pass it explicitly to define the SNR on the active speech of a zero-padded clip.
    The noise covers every sample of ``waveform``.  Float32 out.
    """
    x = np.asarray(waveform, dtype=np.float64)
    if not np.isfinite(snr_db):
        raise ValueError(f'snr_db must be finite, got {snr_db}')
    power = float(np.mean(x ** 2)) if signal_power is None else float(signal_power)
    if power <= 0:
        raise ValueError('cannot set an SNR for a silent waveform (signal power is 0)')
    noise_std = math.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (x + rng.normal(0.0, noise_std, size=x.shape)).astype(np.float32)


def speed_perturb(waveform: np.ndarray, *, factor: float) -> np.ndarray:
    """
    Play a waveform ``factor`` times faster: tempo and pitch together, at the same sample rate.

    Kaldi's speed perturbation (Ko et al. 2015): the signal is resampled by ``1 / factor``
    (``factor`` rounded to a ratio of integers up to 100) and kept at its rate, so 0.9 is
    10 % slower and lower, 1.1 faster and higher.  Along the last axis; float32 out.
    """
    if not 0.5 <= float(factor) <= 2.0:
        raise ValueError(f'speed factor must be in [0.5, 2.0], got {factor}')
    ratio = Fraction(float(factor)).limit_denominator(100)
    return resample_audio(waveform, orig_sample_rate=ratio.numerator, new_sample_rate=ratio.denominator)


# --------------------------------------------------------------------------- streaming

class StreamingLogMel:
    """
    Log-mel frames from a signal that arrives in chunks.

    Holds the samples not yet consumed by a full frame; :meth:`push` returns the
    ``(n_mels, k)`` frames completed by the new chunk (``k`` may be 0).  The
    concatenation of all pushes equals :func:`log_mel_spectrogram` of the whole signal
    with ``center=False``, whatever the chunk sizes.
    """

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                 win_length: int | None = None, window: str | np.ndarray | None = 'hann',
                 power: float = 2.0, f_min: float = 0.0, f_max: float | None = None,
                 mel_scale: str = 'htk', norm: str | None = None, floor: float = 1e-10) -> None:
        _check_frame_params(n_fft, hop_length, win_length)
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self._kwargs = {'win_length': win_length, 'window': window, 'power': power, 'f_min': f_min,
                        'f_max': f_max, 'mel_scale': mel_scale, 'norm': norm, 'floor': floor}
        mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max,
                       mel_scale=mel_scale, norm=norm)                           # validate now
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples (start of a new stream)."""
        self._buffer = np.zeros(0, dtype=np.float32)
        self._skip = 0
        self.frames_emitted = 0

    @property
    def pending_samples(self) -> int:
        """Return the number of samples held back, waiting for the rest of their frame."""
        return int(self._buffer.size)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Append a mono chunk ``(n,)``; returns the newly completed frames ``(n_mels, k)``."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f'StreamingLogMel expects mono chunks of shape (n,), got {chunk.shape}')
        if self._skip:                                  # hop_length > n_fft: a gap between frames
            drop = min(self._skip, chunk.size)
            chunk, self._skip = chunk[drop:], self._skip - drop
        buf = np.concatenate([self._buffer, chunk])
        k = num_frames(buf.size, n_fft=self.n_fft, hop_length=self.hop_length)
        if k == 0:
            self._buffer = buf
            return np.zeros((self.n_mels, 0), dtype=np.float32)
        used = (k - 1) * self.hop_length + self.n_fft
        out = log_mel_spectrogram(buf[:used], sample_rate=self.sample_rate, n_fft=self.n_fft,
                                  hop_length=self.hop_length, n_mels=self.n_mels, center=False,
                                  **self._kwargs)                                # (n_mels, k)
        next_start = k * self.hop_length               # where frame k begins, relative to buf
        self._buffer = buf[next_start:]
        self._skip = max(0, next_start - buf.size)
        self.frames_emitted += k
        return out


# --------------------------------------------------------------------------- pitch

def yin_pitch(waveform: np.ndarray, *, sample_rate: int, frame_length: int = 640, hop_length: int = 160,
              f_min: float = 60.0, f_max: float = 400.0, threshold: float = 0.15, voicing_threshold: float = 0.3,
              silence_rms: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Fundamental frequency by YIN (de Cheveigne & Kawahara 2002), frame by frame.

    Frame ``t`` covers samples ``[t * hop_length, t * hop_length + frame_length)`` (no
    centring, like :func:`spectrogram`); the difference function uses the first half of
    the frame, so ``frame_length >= 2 * sample_rate / f_min``.  The period is the first
    local minimum of the cumulative-mean-normalised difference below ``threshold``
    (else its global minimum) between ``sample_rate / f_max`` and ``sample_rate / f_min``.
    Returns ``f0`` (F,) Hz (0 where unvoiced: aperiodicity above ``voicing_threshold``
    or RMS below ``silence_rms``), the aperiodicity (F,) and the frame RMS (F,), float32.
    """
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f'yin_pitch expects a mono waveform (n,), got {x.shape}')
    half = frame_length // 2
    tau_min, tau_max = int(sample_rate // f_max), int(math.ceil(sample_rate / f_min))
    if not 2 <= tau_min < tau_max <= half:
        raise ValueError(f'need 2 <= sample_rate / f_max < sample_rate / f_min <= frame_length / 2, got '
                         f'f_min={f_min}, f_max={f_max}, frame_length={frame_length} at {sample_rate} Hz')
    n = num_frames(x.size, n_fft=frame_length, hop_length=hop_length)
    if n == 0:
        z = np.zeros(0, np.float32)
        return z, z, z
    frames = stft_frames(x, n_fft=frame_length, hop_length=hop_length)            # (F, L)
    taus = np.arange(tau_max + 1)
    power = np.concatenate([np.zeros((n, 1)), np.cumsum(frames ** 2, axis=1)], axis=1)   # (F, L + 1)
    e0 = power[:, half]                                                             # sum_{j<half} x_j^2
    e_tau = power[:, taus + half] - power[:, taus]                                  # sum_{j<half} x_{j+tau}^2
    size = sp_fft.next_fast_len(2 * frame_length, real=True)
    cross = sp_fft.irfft(np.conj(sp_fft.rfft(frames[:, :half], size)) * sp_fft.rfft(frames, size), size)
    diff = np.maximum(e0[:, None] + e_tau - 2.0 * cross[:, :tau_max + 1], 0.0)     # (F, tau_max + 1)
    cum_mean = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    norm = diff[:, 1:] / np.maximum(cum_mean, 1e-12)                                # tau = 1 .. tau_max
    seg = norm[:, tau_min - 1:]                                                     # tau = tau_min .. tau_max
    nxt = np.concatenate([seg[:, 1:], np.full((n, 1), np.inf)], axis=1)
    dip = (seg < threshold) & (seg <= nxt)                                          # local minimum below threshold
    idx = np.where(dip.any(axis=1), dip.argmax(axis=1), seg.argmin(axis=1))
    aperiodicity = seg[np.arange(n), idx]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    voiced = (aperiodicity < voicing_threshold) & (rms > silence_rms)
    f0 = np.where(voiced, sample_rate / (idx + tau_min), 0.0)
    return f0.astype(np.float32), aperiodicity.astype(np.float32), rms.astype(np.float32)


PROSODY_NAMES = ('f0_mean', 'f0_std', 'f0_p10', 'f0_p50', 'f0_p90', 'f0_abs_slope', 'voiced_fraction',
                 'energy_mean', 'energy_std', 'energy_p10', 'energy_p50', 'energy_p90', 'aperiodicity_mean')


def prosody_functionals(waveform: np.ndarray, *, sample_rate: int, hop_length: int = 160,
                        f0_min: float = 60.0, f0_max: float = 400.0) -> np.ndarray:
    """
    Utterance statistics of pitch and energy (:data:`PROSODY_NAMES`): ``(n,)`` -> ``(13,)`` float32.

    Pitch in octaves re 100 Hz over voiced frames (:func:`yin_pitch`, frames of two
    periods of ``f0_min``); energy as natural-log frame RMS divided by 5, over
    frames above digital silence; fixed scalings only.  Too few voiced or non-silent
    frames (< 3) give zeros for those statistics.
    """
    frame_length = 2 * int(math.ceil(sample_rate / f0_min))
    f0, aper, rms = yin_pitch(waveform, sample_rate=sample_rate, frame_length=frame_length, hop_length=hop_length,
                              f_min=f0_min, f_max=f0_max)
    voiced = f0 > 0
    out = np.zeros(len(PROSODY_NAMES), np.float64)
    if voiced.sum() >= 3:
        st = np.log2(f0[voiced] / 100.0)                                            # octaves re 100 Hz
        out[0:6] = [st.mean(), st.std(), *np.percentile(st, [10, 50, 90]), np.abs(np.diff(st)).mean()]
        out[12] = aper[voiced].mean()
    out[6] = voiced.mean() if voiced.size else 0.0
    loud = rms > 1e-4
    if loud.sum() >= 3:
        le = np.log(rms[loud]) / 5.0
        out[7:12] = [le.mean(), le.std(), *np.percentile(le, [10, 50, 90])]
    return out.astype(np.float32)


# --------------------------------------------------------------------------- model input (training and runtime)

AUDIO_LAYOUTS = ('mel_time', 'channel_mel_time', 'functionals')


def log_mel_functionals(log_mel: np.ndarray, *, floor_level: float) -> np.ndarray:
    """
    Per-band statistics of a standardised log-mel map ``(n_mels, F)`` -> ``(5 * n_mels + 1,)``.

    Over the active frames (those not at ``floor_level`` in every band, i.e. not digital
    silence or zero padding): mean, standard deviation, 10th and 90th percentiles of
    each band, the standard deviation of each band's frame differences, and the active
    fraction of the frames (x 2).
    """
    m = np.asarray(log_mel, dtype=np.float64)
    active = m.max(axis=0) > floor_level + 1e-3
    a = m[:, active] if active.sum() >= 2 else m
    d = np.diff(a, axis=1)
    return np.concatenate([a.mean(axis=1), a.std(axis=1), np.percentile(a, 10, axis=1), np.percentile(a, 90, axis=1),
                           d.std(axis=1), [2.0 * active.mean()]]).astype(np.float32)


def log_mel_model_input(waveform: np.ndarray, *, sample_rate: int, duration_s: float, n_fft: int,
                        hop_length: int, n_mels: int, mean: float, std: float, f_min: float = 0.0,
                        f_max: float | None = None, floor: float = 1e-6, window: str = 'hann',
                        length_mode: str = 'start', layout: str = 'mel_time', f0_min: float = 60.0,
                        f0_max: float = 400.0) -> np.ndarray:
    """
    Turn a mono waveform already at ``sample_rate`` into the audio encoder's input.

    The clip is zero-padded or cut to ``duration_s`` (:func:`fix_length`, ``length_mode``
    'start' keeps its beginning, as EmoDB's files were cut), turned into a log-mel map
    (:func:`log_mel_spectrogram`, ``center=False``) and standardised with the fixed
    constants ``(x - mean) / std`` measured once on the training data and stored in
    the bundle, never with statistics of the clip itself.  Returns ``(n_mels, frames)``
    (``layout='mel_time'``, for ``cnn1d``) or ``(1, n_mels, frames)`` (``cnn2d``)
    float32, ``frames = 1 + (round(duration_s * sample_rate) - n_fft) // hop_length``;
    ``layout='functionals'``: one utterance vector ``(5 * n_mels + 14,)`` for an ``mlp``,
    :func:`log_mel_functionals` of that map followed by :func:`prosody_functionals` of
    the clip (pitch between ``f0_min`` and ``f0_max``, energy), like the openSMILE
    functionals the paper's AFEW audio branch used.
    """
    if not std > 0:
        raise ValueError(f'std must be positive, got {std!r}')
    if layout not in AUDIO_LAYOUTS:
        raise ValueError(f'layout must be one of {AUDIO_LAYOUTS}, got {layout!r}')
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f'waveform must be mono (n,), got shape {x.shape}')
    length = int(round(duration_s * sample_rate))
    if length < n_fft:
        raise ValueError(f'duration_s={duration_s} gives {length} samples, fewer than n_fft={n_fft}')
    x = fix_length(x, length=length, mode=length_mode)
    mel = log_mel_spectrogram(x, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                              f_min=f_min, f_max=f_max, floor=floor, window=window)   # (n_mels, frames)
    out = (mel - np.float32(mean)) / np.float32(std)
    if layout == 'functionals':
        floor_level = (math.log(floor) - mean) / std
        return np.concatenate([log_mel_functionals(out, floor_level=floor_level),
                               prosody_functionals(x, sample_rate=sample_rate, hop_length=hop_length,
                                                   f0_min=f0_min, f0_max=f0_max)])
    return out[None] if layout == 'channel_mel_time' else out


@dataclasses.dataclass(frozen=True)
class LogMelParams:
    """Parameters of pipeline ``log_mel`` (those of :func:`log_mel_model_input`); ``sample_rate``: the audio rate."""

    sample_rate: int
    duration_s: float
    n_fft: int
    hop_length: int
    n_mels: int
    mean: float
    std: float
    f_min: float = 0.0
    f_max: float | None = None
    floor: float = 1e-6
    window: str = 'hann'
    length_mode: str = 'start'
    layout: str = 'mel_time'
    f0_min: float = 60.0
    f0_max: float = 400.0


def log_mel_input(window, /, **params) -> np.ndarray:
    """
    Pipeline ``log_mel``: an audio window -> :func:`log_mel_model_input`.

    ``params``: :class:`LogMelParams`.  ``window`` is a
    :class:`centralnet_ros.features.pipelines.Window` with ``data`` ``(n,)`` float32 mono
    (or ``(n, channels)``, averaged to mono) at ``sample_rate`` Hz, the rate of the
    params (the runtime resamples once, to the manifest's ``sample_rate``; another rate
    is refused).
    """
    from centralnet_ros.features.pipelines import check_sample_rate
    p = LogMelParams(**params)
    check_sample_rate('log_mel', window, p.sample_rate)
    return log_mel_model_input(mono_samples(window), **dataclasses.asdict(p))


def mono_samples(window) -> np.ndarray:
    """Return an audio window's samples as mono float32 ``(n,)`` (``(n, channels)`` is averaged)."""
    x = np.asarray(window.data, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f'audio window must be (n,) or (n, channels), got {x.shape}')
    return x
