"""
microphone_node: PortAudio capture published as audio_common_msgs (a thin lifecycle node).

Publishes ``audio`` (audio_common_msgs/AudioDataStamped: raw interleaved S16LE,
``header.stamp`` the capture time of the chunk's first frame in ROS time, by the
sample count from the stream's start (the audio clock; see :mod:`centralnet_ros.capture`),
``header.frame_id`` the ``frame_id`` parameter) and ``audio_info``
(audio_common_msgs/AudioInfo, transient local, so late subscribers get it),
plus ``/diagnostics``.  The capture loop is :mod:`centralnet_ros.capture`;
this node only converts and publishes.

Lifecycle: configure resolves the device (an unknown device fails the
transition and logs the devices PortAudio sees) and creates the publishers;
activate publishes AudioInfo and starts the stream; deactivate stops it;
cleanup releases everything.  ``ros2 run centralnet_ros microphone_node``
brings itself to active; ``--managed`` leaves that to the launch file.
"""
from __future__ import annotations

import array
import threading
import time

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
from centralnet_ros.capture import (AudioChunk, AudioDeviceError, MicrophoneCapture,
                                    PortAudioUnavailableError)
from centralnet_ros.node_params import MICROPHONE_NODE
from centralnet_ros.ros import (declare_parameters, latched_qos, logged_transition, output_qos, read_parameters,
                                run_lifecycle_node, stamp_msg)
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.lifecycle import Node, State, TransitionCallbackReturn


class MicrophoneNode(Node):
    """Lifecycle node around :class:`~centralnet_ros.capture.MicrophoneCapture`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(MICROPHONE_NODE, **kwargs)
        declare_parameters(self, MICROPHONE_NODE)
        self._params: dict = {}
        self._capture: MicrophoneCapture | None = None
        self._audio_pub = None
        self._info_pub = None
        self._diag_pub = None
        self._diag_timer = None
        self._thread: threading.Thread | None = None
        self._published = 0
        self._last_diag = (time.monotonic(), 0, 0, 0)  # (time, published, overflows, dropped)
        self._error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @logged_transition
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._params = read_parameters(self, MICROPHONE_NODE)
            p = self._params
            capture = MicrophoneCapture(device=p['device'] or None, sample_rate=p['sample_rate'],
                                        channels=p['channels'], chunk_ms=p['chunk_ms'],
                                        clock=self._ros_now)
            device = capture.resolve()
        except (AudioDeviceError, PortAudioUnavailableError, ValueError) as exc:
            self.get_logger().error(f'cannot configure the microphone: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._capture = capture
        self.get_logger().info(
            f'capturing from {device.describe()} at {capture.sample_rate} Hz, '
            f'{capture.channels} channel(s), {capture.chunk_frames} frames per message')
        self._audio_pub = self.create_lifecycle_publisher(AudioDataStamped, 'audio', output_qos())
        self._info_pub = self.create_lifecycle_publisher(AudioInfo, 'audio_info', latched_qos())
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', output_qos())
        self._diag_timer = self.create_timer(p['diagnostics_period_s'], self._publish_diagnostics)
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._info_pub.publish(AudioInfo(**self._capture.audio_info()))
        try:
            self._capture.start()
        except Exception as exc:  # PortAudio refuses to open: stay inactive
            self.get_logger().error(f'cannot start the audio stream: {exc}')
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        self._error = None
        self._thread = threading.Thread(target=self._pump, name='microphone_pump', daemon=True)
        self._thread.start()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_stream()
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop the stream and destroy publishers and timers (idempotent)."""
        self._stop_stream()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
        for pub in (self._audio_pub, self._info_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        self._audio_pub = self._info_pub = self._diag_pub = self._diag_timer = None
        self._capture = None

    # -- work -----------------------------------------------------------------------------

    def _ros_now(self) -> float:
        """ROS time in seconds; called on PortAudio's thread (rclpy clocks are thread-safe)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _stop_stream(self) -> None:
        if self._capture is not None:
            self._capture.stop()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _pump(self) -> None:
        """Publish one AudioDataStamped per captured chunk until the stream stops (a thread)."""
        try:
            for chunk in self._capture:
                self._audio_pub.publish(self._to_msg(chunk))
                self._published += 1
        except Exception as exc:  # report in diagnostics, keep the node alive
            self._error = str(exc)
            self.get_logger().error(f'audio capture stopped: {exc}')

    def _to_msg(self, chunk: AudioChunk):
        msg = AudioDataStamped()
        msg.header.stamp = stamp_msg(chunk.stamp_ns)
        msg.header.frame_id = self._params['frame_id']
        msg.audio.data = array.array('B', chunk.to_s16le())
        return msg

    def _publish_diagnostics(self) -> None:
        capture = self._capture
        if capture is None or self._diag_pub is None:
            return
        stats = capture.stats()
        now = time.monotonic()
        t0, published0, overflows0, dropped0 = self._last_diag
        self._last_diag = (now, self._published, stats.overflows, stats.dropped_chunks)
        rate = (self._published - published0) / max(now - t0, 1e-9)
        device = capture.device_info.name if capture.device_info else ''
        status = DiagnosticStatus(name=f'{self.get_name()}: audio capture', hardware_id=device)
        if self._error is not None:
            status.level = DiagnosticStatus.ERROR
            status.message = f'capture stopped: {self._error}'
        elif not capture.running:
            status.level, status.message = DiagnosticStatus.OK, 'inactive'
        elif stats.overflows > overflows0 or stats.dropped_chunks > dropped0:
            status.level = DiagnosticStatus.WARN
            status.message = 'audio lost (PortAudio overflow or full queue)'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'capturing'
        offset = '' if stats.clock_offset is None else f'{stats.clock_offset:.6f}'
        values = {'device': status.hardware_id, 'sample_rate': capture.sample_rate,
                  'channels': capture.channels, 'chunk_frames': capture.chunk_frames,
                  'messages per second': f'{rate:.1f}', 'messages published': self._published,
                  'PortAudio overflows': stats.overflows,
                  'dropped chunks (queue full)': stats.dropped_chunks,
                  'chunks stamped without ADC time': stats.adc_time_fallbacks,
                  'input latency (s)': f'{capture.input_latency:.4f}',
                  'ROS time - stream time (s)': offset,
                  'sample clock re-anchors': stats.reanchors}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array_msg)


def main(args: list[str] | None = None) -> int:
    """``ros2 run centralnet_ros microphone_node [--managed] [--ros-args ...]``."""
    return run_lifecycle_node(MicrophoneNode, args, node_name=MICROPHONE_NODE)


if __name__ == '__main__':
    raise SystemExit(main())
