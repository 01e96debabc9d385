"""
Hot swap in the fusion node: a new ``<task>.bundle`` parameter, or the ``~/reload_bundles`` service.

``ros2 param set /fusion_node speech.bundle /path/to/my_speech`` loads the bundle
beside the running one, warms it up and swaps it in between decisions
(:func:`centralnet_ros.runtime.hot_swap.swap_bundle`); the node keeps publishing
throughout. A bundle that cannot be used is refused: the parameter set fails with the
reason (``ros2 param set`` prints it) and the old bundle keeps running.
``ros2 service call /fusion_node/reload_bundles std_srvs/srv/Trigger`` re-reads every
task's bundle folder and swaps those whose files changed (a bundle rewritten in place
by ``centralnet finetune --out``). The diagnostics show each task's bundle and its
sha256.

The node wires :func:`on_set_bundles` as an on-set parameters callback and
:func:`reload_bundles` as the service callback; both take the node only to reach its
runtime, logger and LabelInfo publisher.
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ['bundle_parameters', 'on_set_bundles', 'reload_bundles', 'RELOAD_SERVICE']

RELOAD_SERVICE = '~/reload_bundles'


def bundle_parameters(parameters: Iterable[Any], tasks: Iterable[str]) -> dict[str, str]:
    """Return ``task -> bundle`` for the ``<task>.bundle`` parameters among ``parameters``."""
    known = set(tasks)
    out = {}
    for parameter in parameters:
        task, _, leaf = parameter.name.partition('.')
        if leaf == 'bundle' and task in known:
            out[task] = str(parameter.value)
    return out


def _swap(node: Any, task: str, bundle: str) -> tuple[bool, str]:
    from centralnet_ros.runtime.hot_swap import swap_bundle
    result = swap_bundle(node._perception, task, bundle)
    if result.accepted:
        node.get_logger().info(f'{task}: now running bundle {result.running} (sha256 {result.sha256[:12]}, '
                               f'loaded and warmed beside the old one in {result.load_s:.2f} s)')
        node._publish_label_info(task)                # the labels may have changed
        return True, f'{task}: {result.running} ({result.sha256[:12]})'
    message = f'{task}: bundle {bundle} refused, keeping {result.running}: {result.reason}'
    node.get_logger().error(message)
    return False, message


def on_set_bundles(node: Any, parameters: list, result_type: Any) -> Any:
    """
    On-set parameters callback: swap each changed ``<task>.bundle`` in; refuse the set when a bundle is refused.

    Before the node is configured (no runtime) the values are accepted and read at
    configure. ``result_type``: ``rcl_interfaces.msg.SetParametersResult``.
    """
    perception = getattr(node, '_perception', None)
    if perception is None:
        return result_type(successful=True)
    for task, bundle in bundle_parameters(parameters, perception.tasks).items():
        if bundle == str(perception.tasks[task].model.bundle.path) or bundle == perception.config.tasks[task].bundle:
            continue
        ok, message = _swap(node, task, bundle)
        if not ok:
            return result_type(successful=False, reason=message)
    return result_type(successful=True)


def reload_bundles(node: Any, request: Any, response: Any) -> Any:
    """``std_srvs/Trigger`` callback: swap in every task's bundle whose files changed; say what happened."""
    from centralnet_ros.runtime.hot_swap import bundle_changed
    perception = getattr(node, '_perception', None)
    if perception is None:
        response.success, response.message = False, 'not configured: no runtime to reload'
        return response
    messages, ok = [], True
    for task, state in list(perception.tasks.items()):
        bundle = str(node.get_parameter(f'{task}.bundle').value)
        if not bundle_changed(perception, task, bundle):
            messages.append(f'{task}: unchanged ({state.model.bundle_sha256[:12]})')
            continue
        accepted, message = _swap(node, task, bundle)
        ok &= accepted
        messages.append(message)
    response.success, response.message = ok, '; '.join(messages)
    return response
