"""
The ``centralnet`` command.

Each subcommand lives in its own module and exposes ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand is used, so
``centralnet --help`` and ``centralnet data check`` never import torch.

A failing command prints one line on stderr (``centralnet COMMAND: what went wrong``)
and exits non-zero; :func:`main` is the one error boundary that turns an exception a
command did not handle into that line. ``--debug`` (anywhere on the command line)
lets the traceback through instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from centralnet_ros.machine import command_line

# name -> (module, one-line help).  Nested commands use a space ("data check").
COMMANDS: dict[str, tuple[str, str]] = {
    'compare': ('centralnet_ros.training.compare',
                'train CentralNet and the baselines over seeds and write tables and plots'),
    'train': ('centralnet_ros.training.train_cli',
              'train one task model from a preset and write a model bundle'),
    'transfer': ('centralnet_ros.training.transfer_cli',
                 'KNN audio-to-video representation transfer on AVLetters'),
    'probe': ('centralnet_ros.training.probe_cli',
              'auto-encoder probing table and figures'),
    'export': ('centralnet_ros.bundle.export_cli',
               'export a model bundle to ONNX and check it against torch'),
    'info': ('centralnet_ros.bundle.info_cli',
             "print a bundle's task, labels, inputs and pipelines, metrics and their data, and terms"),
    'replay': ('centralnet_ros.replay.cli',
               'replay a rosbag2 recording through the runtime and evaluate it'),
    'play': ('centralnet_ros.ros.play',
             'publish a rosbag2 recording onto live ROS 2 topics (rclpy; ros2 bag play without rosbag2)'),
    'demo': ('centralnet_ros.demo',
             'build a small rosbag2 from held-out real samples and replay it with the default models'),
    'finetune': ('centralnet_ros.finetune_cli',
                 'fine-tune a bundle on your own labelled bags (samples made by the runtime)'),
    'speech-windows': ('centralnet_ros.speech_windows',
                       "play the speech bundle's calibration utterances through the runtime's windows (training data)"),
    'export-media': ('centralnet_ros.replay.export_media',
                     'write a bag as WAV/MP4 files and an ELAN .eaf, aligned to bag time'),
    'data check': ('centralnet_ros.data.check',
                   'read every file of a dataset and print its samples per split and class'),
}


def invocation() -> list[str]:
    """Return how to run ``centralnet`` with this Python: its environment's console script, else ``python -m``."""
    import shutil
    from pathlib import Path
    script = shutil.which('centralnet', path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, '-m', 'centralnet_ros.cli']


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f'{self.prog}: {one_line(message)} (see {self.prog} --help)\n')


def one_line(text: object, limit: int = 2000) -> str:
    """Return ``text`` as a single line (newlines folded to '; '), cut at ``limit`` characters."""
    line = '; '.join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[:limit - 3] + '...'


def _build_parser(selected: str | None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog='centralnet',
        description='CentralNet multimodal fusion: training, evaluation and rosbag replay.')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of a failure (accepted anywhere on the command line)')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, help_text) in COMMANDS.items():
        parts = name.split()
        target = sub
        if len(parts) == 2:
            if parts[0] not in groups:
                group_parser = sub.add_parser(parts[0], help=f'{parts[0]} tools ({parts[0]} check, ...)')
                groups[parts[0]] = group_parser.add_subparsers(dest='subcommand', metavar='SUBCOMMAND',
                                                               parser_class=_Parser)
            target = groups[parts[0]]
        cmd = target.add_parser(parts[-1], help=help_text, description=help_text,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        cmd.set_defaults(_module=module)
        if name == selected:
            importlib.import_module(module).add_arguments(cmd)
    return parser


def _selected(argv: list[str]) -> str | None:
    words = [a for a in argv if not a.startswith('-')]
    for n in (2, 1):
        name = ' '.join(words[:n])
        if name in COMMANDS:
            return name
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv
    argv = [a for a in argv if a != '--debug']
    selected = _selected(argv)
    prog = 'centralnet' + (f' {selected}' if selected else '')
    try:
        parser = _build_parser(selected)
        args = parser.parse_args(argv)
        args.debug = debug
        args.command_line = command_line(argv)   # recorded in result files
        module = getattr(args, '_module', None)
        if module is None:
            parser.print_help()
            return 2
        return int(importlib.import_module(module).run(args) or 0)
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one error boundary of the command line
        if debug:
            raise
        print(f'{prog}: {_describe(exc)}', file=sys.stderr)
        return 1


def _describe(exc: BaseException) -> str:
    """One line saying what went wrong: the message of an expected error, the type of an unexpected one."""
    expected = (ValueError, OSError, LookupError, RuntimeError)
    text = one_line(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return 'out of memory (an input larger than this machine can hold?); run with --debug for the traceback'
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f'{exc.filename}: {exc.strerror}'
    if type(exc).__module__ == 'builtins' and not isinstance(exc, expected):
        return f'internal error ({type(exc).__name__}: {text}); run with --debug for the traceback'
    if type(exc).__module__ != 'builtins' and not isinstance(exc, expected):
        return f'{type(exc).__name__}: {text} (run with --debug for the traceback)'
    return text


if __name__ == '__main__':
    sys.exit(main())
