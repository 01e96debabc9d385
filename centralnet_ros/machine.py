"""Describe the machine a figure was measured on (recorded in every result file)."""
from __future__ import annotations

import os
from pathlib import Path
import platform
import sys
from typing import Any


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(*, with_torch: bool = True) -> dict[str, Any]:
    """Return CPU, core count, load, Python, numpy/torch versions and GPU (when torch is asked for)."""
    import numpy as np
    info: dict[str, Any] = {
        'cpu_model': cpu_model(), 'processor': platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(), 'platform': platform.platform(), 'python': sys.version.split()[0],
        'numpy': np.__version__}
    try:
        info['load_average_1min'] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if with_torch:
        import torch
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    cuda=torch.cuda.is_available())
        if info['cuda']:
            info['gpu'] = torch.cuda.get_device_name(0)
    return info


def machine_line(info: dict[str, Any] | None = None) -> str:
    """Return a one-line summary of :func:`machine_description` for markdown results."""
    m = info or machine_description()
    parts = [f'{m["cpu_model"]}, {m["cpu_count"]} cores']
    if 'torch' in m:
        parts.append(f'torch {m["torch"]} ({m["torch_threads"]} threads)')
    parts.append(m['platform'])
    if m.get('gpu'):
        parts.append(f'GPU {m["gpu"]}')
    if 'load_average_1min' in m:
        parts.append(f'load average {m["load_average_1min"]} at the time')
    return ', '.join(parts)


def command_line(argv=None, *, program: str = 'centralnet', args=None) -> str:
    """
    Return the command that produced a result, as one shell-quoted line (what result files record).

    ``argv`` defaults to ``sys.argv[1:]``; ``program`` is ``centralnet`` for a subcommand or
    e.g. ``python benchmarks/x.py`` for a script.  With ``args`` (an argparse namespace from
    :mod:`centralnet_ros.cli`) the line the CLI recorded is returned when it has one.
    """
    import shlex
    recorded = getattr(args, 'command_line', None)
    if recorded:
        return recorded
    return shlex.join([*shlex.split(program), *(sys.argv[1:] if argv is None else argv)])


def write_results(out, name: str, payload: dict, render=None, *, command: str, machine: dict | None = None,
                  markdown: str | None = None, indent: int | None = 2) -> str:
    """
    Write a benchmark's result files ``<out>/<name>.json`` and ``<out>/<name>.md``, each atomically.

    ``payload`` (the JSON) gets ``machine`` (default: :func:`machine_description` now), ``command``
    (:func:`command_line`) and ``date`` unless it has them; the markdown is ``render(payload)`` (or
    ``markdown`` as given), so it can quote them.  Returns the markdown.
    """
    import json
    import time

    from centralnet_ros.config import atomic_write_text
    payload.setdefault('machine', machine if machine is not None else machine_description())
    payload['command'] = command
    payload.setdefault('date', time.strftime('%Y-%m-%d'))
    text = markdown if markdown is not None else render(payload)
    out = Path(out)
    atomic_write_text(out / f'{name}.json', json.dumps(payload, indent=indent, default=str) + '\n')
    atomic_write_text(out / f'{name}.md', text if text.endswith('\n') else text + '\n')
    return text
