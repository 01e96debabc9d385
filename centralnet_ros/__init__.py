"""
centralnet_ros: CentralNet multimodal fusion for social robots.

One folder per responsibility; who may import whom is the table of the README's Layout
section, enforced by test/test_import_boundary.py (ros/ is the only place that imports rclpy).
"""
__version__ = '0.1.0'
