"""
Per-utterance acoustic functionals for speech emotion, frame-local and streamable.

In the spirit of openSMILE's emotion sets (ComParE / eGeMAPS): frame-level
descriptors (low-level descriptors, LLDs) every ``hop_length`` samples, summarised
over the utterance by statistics computed separately over voiced and unvoiced frames.

Frame ``t`` covers samples ``[t * hop_length, t * hop_length + frame_length)`` with
``frame_length = 2 * ceil(sample_rate / f0_min)`` (two periods of the lowest pitch);
its spectral descriptors use the first ``n_fft`` samples of it.  No centring, no
statistics of the clip: every LLD of a frame depends on that frame's samples only, so
a stream pushed in chunks (:class:`StreamingFunctionals`) gives exactly the LLDs of
the whole signal, and the same functionals.

LLDs (:data:`LLD_NAMES`) per frame: ``n_mels`` log-mel bands, ``n_mfcc`` MFCCs,
loudness (natural log of the frame RMS), spectral centroid, spread, flatness,
85 % roll-off, slope, alpha ratio (50-1000 Hz over 1-5 kHz), Hammarberg index
(strongest peak 0-2 kHz over 2-5 kHz), zero-crossing rate; and, for the prosody
group, log2 pitch (YIN on the frame decimated by two, parabolic interpolation),
harmonicity (10 log10 of periodic over aperiodic energy) and the voicing decision.

Functionals (:func:`functional_names` gives every name):

- each spectral LLD: mean, standard deviation, 10th / 50th / 90th percentile over the
  voiced frames; mean and standard deviation over the unvoiced active frames; over all
  active frames the mean absolute frame-to-frame change, mean, standard deviation,
  range between the 5th and 95th percentiles, skewness, kurtosis, and the contour's
  linear-regression slope (per second), quadratic curvature and residual deviation;
- pitch over voiced frames: mean, standard deviation, percentiles, slope (octaves per
  second), mean absolute change between consecutive voiced frames, a jitter-like
  measure (mean absolute period change over the mean period), harmonicity mean and
  standard deviation, a shimmer-like measure (mean absolute loudness change between
  consecutive voiced frames, dB) and its standard deviation, the 1st / 5th / 25th /
  75th / 95th / 99th percentiles, mean rise and mean fall between voiced frames;
- spectrum shape: entropy of the mel spectrum (mean over voiced and unvoiced frames,
  deviation over active ones) and mel flux (Euclidean log-mel change between active
  frames: mean, deviation, 90th percentile);
- timing: active fraction, voiced fraction of the active frames, voiced segments per
  active second, mean voiced and unvoiced segment length (s), active duration (s).

Frames whose RMS is below ``silence_rms`` (digital silence, zero padding) are not
active and enter no statistic.  Fixed scalings only; the per-speaker normalisation
of these vectors is :mod:`centralnet_ros.features.normalisation`.
"""
from __future__ import annotations

import dataclasses
import functools
import math

from centralnet_ros.features.audio import create_dct, fix_length, mel_filterbank, mono_samples, num_frames
from centralnet_ros.features.audio import stft_frames
import numpy as np
from scipy import fft as sp_fft

__all__ = ['FunctionalsConfig', 'LLD_NAMES', 'frame_descriptors', 'utterance_functionals', 'functional_names',
           'emotion_functionals', 'StreamingFunctionals', 'emotion_functionals_input', 'active_speech_s']

SPECTRAL_NAMES = ('loudness', 'centroid_khz', 'spread_khz', 'flatness', 'rolloff_khz', 'slope', 'alpha_ratio',
                  'hammarberg', 'zcr')
PITCH_NAMES = ('log2_f0', 'harmonicity', 'voiced')
SPECTRAL_STATS = ('voiced_mean', 'voiced_std', 'voiced_p10', 'voiced_p50', 'voiced_p90', 'unvoiced_mean',
                  'unvoiced_std', 'active_abs_delta', 'active_mean', 'active_std', 'active_range90', 'active_skewness',
                  'active_kurtosis', 'active_slope', 'active_curvature', 'active_residual_std')
PITCH_STATS = ('f0_mean', 'f0_std', 'f0_p10', 'f0_p50', 'f0_p90', 'f0_slope', 'f0_abs_delta', 'jitter_like',
               'harmonicity_mean', 'harmonicity_std', 'shimmer_like', 'shimmer_like_std', 'f0_p1', 'f0_p5', 'f0_p25',
               'f0_p75', 'f0_p95', 'f0_p99', 'f0_rise_mean', 'f0_fall_mean')
SPECTRUM_STATS = ('mel_entropy_voiced_mean', 'mel_entropy_active_std', 'mel_entropy_unvoiced_mean', 'mel_flux_mean',
                  'mel_flux_std', 'mel_flux_p90')
TIMING_STATS = ('active_fraction', 'voiced_fraction', 'voiced_segments_per_s', 'voiced_segment_s',
                'unvoiced_segment_s', 'active_s')


@dataclasses.dataclass
class FunctionalsConfig:
    """Parameters of :func:`emotion_functionals` (the ``emotion_functionals`` pipeline's preprocessing)."""

    sample_rate: int = 16000          # Hz the waveform is resampled to
    max_duration_s: float = 2.0       # the utterance is kept from its start and cut here (training clips: 2 s)
    n_fft: int = 400                  # spectral frame (25 ms)
    hop_length: int = 160             # 10 ms
    n_mels: int = 26
    n_mfcc: int = 13
    f_min: float = 50.0
    f_max: float = 8000.0
    f0_min: float = 60.0              # pitch search range (Hz)
    f0_max: float = 400.0
    yin_threshold: float = 0.15
    voicing_threshold: float = 0.3    # aperiodicity below which a frame is voiced
    silence_rms: float = 1e-3         # frames quieter than this (-60 dBFS) are not active

    def __post_init__(self):
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_fft <= 0:
            raise ValueError('sample_rate, n_fft and hop_length must be positive')
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 4:
            raise ValueError(f'need 0 < f0_min < f0_max < sample_rate / 4, got {self.f0_min}, {self.f0_max}')
        if self.frame_length < self.n_fft:
            raise ValueError(f'frame_length {self.frame_length} (two periods of f0_min) is shorter than n_fft')
        if not 0 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f'need 0 <= n_mfcc <= n_mels (0: no MFCCs), got {self.n_mfcc}, {self.n_mels}')
        if self.max_duration_s * self.sample_rate < self.frame_length:
            raise ValueError(f'max_duration_s={self.max_duration_s} is shorter than one frame')

    @property
    def frame_length(self) -> int:
        """Return the samples per frame: two periods of ``f0_min``, rounded up to an even number."""
        n = 2 * int(math.ceil(self.sample_rate / self.f0_min))
        return n + (n % 2)


def _config(params: dict | FunctionalsConfig | None) -> FunctionalsConfig:
    if isinstance(params, FunctionalsConfig):
        return params
    return _parse(tuple(sorted((params or {}).items())))


@functools.lru_cache(maxsize=16)
def _parse(items: tuple) -> FunctionalsConfig:
    from centralnet_ros.config import from_dict
    return from_dict(FunctionalsConfig, dict(items), _where='emotion_functionals')


def lld_names(cfg: FunctionalsConfig) -> tuple[str, ...]:
    """Names of the columns of :func:`frame_descriptors`."""
    return (tuple(f'logmel{i}' for i in range(cfg.n_mels)) + tuple(f'mfcc{i}' for i in range(cfg.n_mfcc))
            + SPECTRAL_NAMES + PITCH_NAMES)


LLD_NAMES = lld_names(FunctionalsConfig())


def functional_names(cfg: FunctionalsConfig | dict | None = None) -> list[str]:
    """Names of the values of :func:`utterance_functionals`, in order."""
    cfg = _config(cfg)
    spectral = lld_names(cfg)[:-len(PITCH_NAMES)]
    return ([f'{n}_{s}' for n in spectral for s in SPECTRAL_STATS] + list(PITCH_STATS) + list(SPECTRUM_STATS)
            + list(TIMING_STATS))


@functools.lru_cache(maxsize=8)
def _tables(sample_rate: int, n_fft: int, n_mels: int, n_mfcc: int, f_min: float, f_max: float):
    fb = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
    dct = create_dct(n_mfcc=n_mfcc, n_mels=n_mels) if n_mfcc else np.zeros((n_mels, 0), np.float32)
    # ^ (n_mels, n_mfcc)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate).astype(np.float32)            # Hz
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)                          # periodic Hann
    khz = freqs / 1000.0
    x = khz - khz.mean()
    slope_w = (x / np.sum(x * x)).astype(np.float32)                                # regression weights
    bands = {name: (freqs >= lo) & (freqs < hi) for name, lo, hi in
             (('a_lo', 50, 1000), ('a_hi', 1000, 5000), ('h_lo', 0, 2000), ('h_hi', 2000, 5000))}
    return fb, dct, freqs, window, slope_w, bands


def frame_descriptors(waveform: np.ndarray, *, cfg: FunctionalsConfig | dict | None = None) -> np.ndarray:
    """
    Compute the LLDs of every frame: mono ``(n,)`` at ``cfg.sample_rate`` -> ``(F, len(lld_names(cfg)))`` float32.

    ``F = 1 + (n - frame_length) // hop_length`` (0 when shorter than one frame).  The
    last column is the voicing decision (1 voiced, 0 not); unvoiced frames have
    log2 pitch and harmonicity 0.
    """
    cfg = _config(cfg)
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f'frame_descriptors expects a mono waveform (n,), got {x.shape}')
    n_cols = len(lld_names(cfg))
    L = cfg.frame_length
    n = num_frames(x.size, n_fft=L, hop_length=cfg.hop_length)
    if n == 0:
        return np.zeros((0, n_cols), np.float32)
    frames = stft_frames(x, n_fft=L, hop_length=cfg.hop_length)[:n]                 # (F, L) view
    fb, dct, freqs, window, slope_w, bands = _tables(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.n_mfcc,
                                                     cfg.f_min, cfg.f_max)
    spec_frames = frames[:, :cfg.n_fft]                                              # (F, n_fft)
    spec = sp_fft.rfft(spec_frames * window, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32) + np.float32(1e-12)  # (F, n_freqs)
    logmel = np.log(np.maximum(power @ fb, 1e-10))                                  # (F, n_mels)
    mfcc = logmel @ dct                                                              # (F, n_mfcc)
    total = power.sum(axis=1)
    rms = np.sqrt(np.mean(spec_frames.astype(np.float32) ** 2, axis=1))
    loudness = np.log(np.maximum(rms, 1e-5))
    khz = freqs / 1000.0
    centroid = power @ khz / total
    spread = np.sqrt(np.maximum(power @ (khz ** 2) / total - centroid ** 2, 0.0))
    logp = np.log(power)
    flatness = logp.mean(axis=1) - np.log(total / power.shape[1])
    cum = np.cumsum(power, axis=1)
    rolloff = khz[np.minimum((cum < 0.85 * total[:, None]).sum(axis=1), khz.size - 1)]
    slope = (10.0 / math.log(10.0)) * (logp @ slope_w)                              # dB per kHz
    db = lambda a, b: (10.0 / math.log(10.0)) * (np.log(a + 1e-12) - np.log(b + 1e-12))  # noqa: E731
    alpha = db(power[:, bands['a_lo']].sum(1), power[:, bands['a_hi']].sum(1))
    hammarberg = db(power[:, bands['h_lo']].max(1), power[:, bands['h_hi']].max(1))
    signs = np.signbit(spec_frames)
    zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
    log2_f0, harmonicity, voiced = _pitch(frames, rms, cfg)
    cols = [logmel, mfcc, np.stack([loudness, centroid, spread, flatness, rolloff, slope, alpha, hammarberg, zcr,
                                    log2_f0, harmonicity, voiced], axis=1)]
    return np.concatenate(cols, axis=1).astype(np.float32)


def _pitch(frames: np.ndarray, rms: np.ndarray, cfg: FunctionalsConfig) -> tuple[np.ndarray, ...]:
    """YIN on each frame decimated by two (pairs averaged): log2 f0 re 100 Hz, harmonicity (dB), voiced."""
    zeros = np.zeros(frames.shape[0], np.float32)
    loud = np.flatnonzero(rms > cfg.silence_rms)                 # silent frames are unvoiced: no search
    if loud.size == 0:
        return zeros, zeros, zeros
    frames, rms = frames[loud], rms[loud]
    n = frames.shape[0]
    d = 0.5 * (frames[:, 0::2] + frames[:, 1::2]).astype(np.float32)               # (F, L / 2) at rate / 2
    rate = cfg.sample_rate / 2.0
    half = d.shape[1] // 2
    tau_min, tau_max = max(2, int(rate // cfg.f0_max)), int(math.ceil(rate / cfg.f0_min))
    tau_max = min(tau_max, half)
    size = sp_fft.next_fast_len(d.shape[1] + half, real=True)
    cross = sp_fft.irfft(np.conj(sp_fft.rfft(d[:, :half], size, axis=1)) * sp_fft.rfft(d, size, axis=1), size,
                         axis=1)[:, :tau_max + 1]
    energy = np.concatenate([np.zeros((n, 1), np.float32), np.cumsum(d * d, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    diff = np.maximum(energy[:, half:half + 1] + energy[:, taus + half] - energy[:, taus] - 2.0 * cross, 0.0)
    cum_mean = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    norm = diff[:, 1:] / np.maximum(cum_mean, 1e-12)                                 # tau = 1 .. tau_max
    seg = norm[:, tau_min - 1:]                                                      # tau = tau_min .. tau_max
    nxt = np.concatenate([seg[:, 1:], np.full((n, 1), np.inf, np.float32)], axis=1)
    dip = (seg < cfg.yin_threshold) & (seg <= nxt)
    idx = np.where(dip.any(axis=1), dip.argmax(axis=1), seg.argmin(axis=1))
    rows = np.arange(n)
    aper = seg[rows, idx]
    left = seg[rows, np.maximum(idx - 1, 0)]
    right = seg[rows, np.minimum(idx + 1, seg.shape[1] - 1)]
    denom = left - 2.0 * aper + right
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / np.where(denom == 0, 1.0, denom), 0.0)
    tau = idx + tau_min + np.clip(shift, -0.5, 0.5)
    voiced = (aper < cfg.voicing_threshold) & (rms > cfg.silence_rms)
    a = np.clip(aper, 1e-3, 1.0 - 1e-3)
    out = np.zeros((3, zeros.size), np.float32)
    out[0, loud] = np.where(voiced, np.log2(rate / tau / 100.0), 0.0)
    out[1, loud] = np.where(voiced, 10.0 * np.log10((1.0 - a) / a), 0.0)
    out[2, loud] = voiced
    return out[0], out[1], out[2]


def _shape(rows: np.ndarray, k: int) -> np.ndarray:
    """Mean, standard deviation, 5-95 % range, skewness and kurtosis of each column ``(5, k)``."""
    if rows.shape[0] < 4:
        return np.zeros((5, k))
    mean, std = rows.mean(0), rows.std(0)
    c = (rows - mean) / np.maximum(std, 1e-6)
    lo, hi = np.percentile(rows, [5, 95], axis=0)
    return np.stack([mean, std, hi - lo, (c ** 3).mean(0), (c ** 4).mean(0)])


def _trend(rows: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """Linear slope (per second), quadratic curvature and residual std of each column over times ``t`` ``(3, k)``."""
    if rows.shape[0] < 4:
        return np.zeros((3, k))
    tc = t - t.mean()
    slope = tc @ rows / max(float(tc @ tc), 1e-12)
    q = tc * tc - np.mean(tc * tc)
    curvature = q @ rows / max(float(q @ q), 1e-12)
    residual = rows - rows.mean(0) - tc[:, None] * slope
    return np.stack([slope, curvature, residual.std(0)])


def _spectrum_shape(logmel: np.ndarray, active: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Entropy of the mel spectrum (voiced mean, active std, unvoiced mean) and mel flux (mean, std, p90)."""
    out = np.zeros(len(SPECTRUM_STATS))
    if active.sum() < 4:
        return out
    e = np.exp(logmel - logmel.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    entropy = -(p * np.log(p + 1e-12)).sum(1)
    unvoiced = active & ~voiced
    out[0] = entropy[voiced].mean() if voiced.any() else 0.0
    out[1] = entropy[active].std()
    out[2] = entropy[unvoiced].mean() if unvoiced.any() else 0.0
    pair = active[1:] & active[:-1]
    if pair.any():
        flux = np.sqrt((np.diff(logmel, axis=0) ** 2).sum(1))[pair]
        out[3:] = flux.mean(), flux.std(), np.percentile(flux, 90)
    return out


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean vector."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(m))
    return edges[1::2] - edges[::2]


def utterance_functionals(llds: np.ndarray, *, cfg: FunctionalsConfig | dict | None = None) -> np.ndarray:
    """Functionals of an LLD matrix ``(F, len(lld_names(cfg)))`` -> ``(len(functional_names(cfg)),)`` float32."""
    cfg = _config(cfg)
    names = lld_names(cfg)
    a = np.asarray(llds, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(names):
        raise ValueError(f'expected LLDs of shape (F, {len(names)}), got {a.shape}')
    k = len(names) - len(PITCH_NAMES)
    i_loud = names.index('loudness')
    spec, log2_f0, harm, voiced = a[:, :k], a[:, k], a[:, k + 1], a[:, k + 2] > 0.5
    active = a[:, i_loud] > math.log(cfg.silence_rms)
    voiced &= active
    unvoiced = active & ~voiced
    frame_s = cfg.hop_length / cfg.sample_rate

    def stats(rows: np.ndarray, pct: bool) -> np.ndarray:
        if rows.shape[0] < 2:
            return np.zeros((5 if pct else 2, k))
        out = [rows.mean(0), rows.std(0)]
        if pct:
            out += list(np.percentile(rows, [10, 50, 90], axis=0))
        return np.stack(out)

    pair = active[1:] & active[:-1]
    delta = np.abs(np.diff(spec, axis=0))[pair].mean(0) if pair.sum() >= 1 else np.zeros(k)
    block = np.concatenate([stats(spec[voiced], True), stats(spec[unvoiced], False), delta[None],
                            _shape(spec[active], k), _trend(spec[active], np.flatnonzero(active) * frame_s, k)])
    # ^ (16, k)
    pitch = np.zeros(len(PITCH_STATS))
    if voiced.sum() >= 3:
        f0 = log2_f0[voiced]
        t = np.flatnonzero(voiced) * frame_s
        tc = t - t.mean()
        vpair = voiced[1:] & voiced[:-1]
        df0 = np.diff(log2_f0)[vpair]
        period = 2.0 ** -log2_f0                                                    # in units of 10 ms
        dper = np.abs(np.diff(period))[vpair]
        dloud = np.diff(a[:, i_loud])[vpair] * (20.0 / math.log(10.0))             # dB
        pitch[:6] = [f0.mean(), f0.std(), *np.percentile(f0, [10, 50, 90]), np.sum(tc * f0) / max(np.sum(tc * tc),
                                                                                                  1e-9)]
        if vpair.sum() >= 1:
            pitch[6] = np.abs(df0).mean()
            pitch[7] = dper.mean() / period[voiced].mean()
            pitch[10], pitch[11] = np.abs(dloud).mean(), np.abs(dloud).std()
        pitch[8], pitch[9] = harm[voiced].mean(), harm[voiced].std()
        pitch[12:18] = np.percentile(f0, [1, 5, 25, 75, 95, 99])
        rise, fall = df0[df0 > 0], df0[df0 < 0]
        pitch[18], pitch[19] = (rise.mean() if rise.size else 0.0), (fall.mean() if fall.size else 0.0)
    n_active = int(active.sum())
    vruns, uruns = _runs(voiced), _runs(unvoiced)
    timing = [active.mean() if active.size else 0.0, voiced.sum() / max(n_active, 1),
              vruns.size / max(n_active * frame_s, frame_s), vruns.mean() * frame_s if vruns.size else 0.0,
              uruns.mean() * frame_s if uruns.size else 0.0, n_active * frame_s]
    shape = _spectrum_shape(a[:, :cfg.n_mels], active, voiced)
    return np.concatenate([block.T.ravel(), pitch, shape, timing]).astype(np.float32)


def _prepare(waveform: np.ndarray, cfg: FunctionalsConfig) -> np.ndarray:
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f'waveform must be mono (n,), got shape {x.shape}')
    limit = int(round(cfg.max_duration_s * cfg.sample_rate))
    return x[:limit] if x.size > limit else x


def emotion_functionals(waveform: np.ndarray, **params) -> np.ndarray:
    """
    Utterance functionals of a mono waveform already at ``sample_rate`` (params: :class:`FunctionalsConfig`).

    The utterance is kept from its start up to ``max_duration_s``; shorter ones are
    not padded (padding would be silence, which no statistic reads anyway) but padded
    to one frame when shorter than that.  Returns ``(len(functional_names()),)`` float32.
    """
    return _functionals(waveform, _config(params))


def _functionals(waveform: np.ndarray, cfg: FunctionalsConfig) -> np.ndarray:
    x = _prepare(waveform, cfg)
    if x.size < cfg.frame_length:
        x = fix_length(x, length=cfg.frame_length, mode='start')
    return utterance_functionals(frame_descriptors(x, cfg=cfg), cfg=cfg)


def active_speech_s(llds: np.ndarray, *, cfg: FunctionalsConfig | dict | None = None) -> float:
    """Seconds of active (non-silent) frames in an LLD matrix: the speech an utterance adapts with."""
    cfg = _config(cfg)
    i = lld_names(cfg).index('loudness')
    return float(np.sum(np.asarray(llds)[:, i] > math.log(cfg.silence_rms)) * cfg.hop_length / cfg.sample_rate)


class StreamingFunctionals:
    """
    Functionals of an utterance that arrives in chunks.

    :meth:`push` computes the LLDs of the frames each chunk completes (keeping the
    samples of the frames still open); :meth:`functionals` summarises the frames so
    far.  Equal to :func:`emotion_functionals` of the concatenated chunks, whatever
    the chunk sizes (samples past ``max_duration_s`` are ignored, as there).
    """

    def __init__(self, **params) -> None:
        self.cfg = _config(params)
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        self._buffer = np.zeros(0, np.float32)
        self._consumed = 0
        self._llds: list[np.ndarray] = []

    @property
    def num_frames(self) -> int:
        """Frames completed so far."""
        return int(sum(len(b) for b in self._llds))

    def push(self, chunk: np.ndarray) -> int:
        """Append a mono chunk ``(n,)`` at ``sample_rate``; returns how many frames it completed."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f'StreamingFunctionals expects mono chunks (n,), got {chunk.shape}')
        limit = int(round(self.cfg.max_duration_s * self.cfg.sample_rate))
        room = max(0, limit - self._consumed)
        chunk = chunk[:room]
        self._consumed += chunk.size
        buf = np.concatenate([self._buffer, chunk])
        k = num_frames(buf.size, n_fft=self.cfg.frame_length, hop_length=self.cfg.hop_length)
        if k == 0:
            self._buffer = buf
            return 0
        used = (k - 1) * self.cfg.hop_length + self.cfg.frame_length
        self._llds.append(frame_descriptors(buf[:used], cfg=self.cfg))
        self._buffer = buf[k * self.cfg.hop_length:]
        return k

    def llds(self) -> np.ndarray:
        """Return the LLDs of the frames so far ``(F, D)``."""
        if not self._llds:
            return np.zeros((0, len(lld_names(self.cfg))), np.float32)
        return np.concatenate(self._llds)

    def functionals(self) -> np.ndarray:
        """Functionals of the utterance so far (as :func:`emotion_functionals`)."""
        llds = self.llds()
        if len(llds) == 0:
            pad = fix_length(self._buffer, length=self.cfg.frame_length, mode='start')
            llds = frame_descriptors(pad, cfg=self.cfg)
        return utterance_functionals(llds, cfg=self.cfg)


def emotion_functionals_input(window, /, **params) -> np.ndarray:
    """
    Pipeline ``emotion_functionals``: an audio window -> :func:`emotion_functionals`.

    ``params``: :class:`FunctionalsConfig`.  ``window`` is a
    :class:`centralnet_ros.features.pipelines.Window` with ``data`` ``(n,)`` float32 mono
    (or ``(n, channels)``, averaged) at ``sample_rate`` Hz, the rate of the params (the
    runtime resamples once, to the manifest's ``sample_rate``; another rate is refused).
    """
    from centralnet_ros.features.pipelines import check_sample_rate
    cfg = _config(params)
    check_sample_rate('emotion_functionals', window, cfg.sample_rate)
    return _functionals(mono_samples(window), cfg)
