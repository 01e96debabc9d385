"""
centralnet_ros: CentralNet multimodal fusion for social robots.

Folders, and who may import whom (downwards only):
fusion/ encoders/ -> representation/ ; features/ -> data/ ; bundle/ -> training/ ;
messages/ -> runtime/ -> replay/, ros/ (the only place that imports rclpy).
"""
__version__ = '0.1.0'
