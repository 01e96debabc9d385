"""
Model bundles: the one contract between training and the robot.

A bundle is a folder holding ``model.safetensors`` (weights, never pickled) and
``manifest.yaml`` (architecture, modalities with input shapes and preprocessing,
labels, task, metrics and the data they were measured on, format version).
"""
from centralnet_ros.bundle.io import Bundle, BundleError, load_bundle, save_bundle
from centralnet_ros.bundle.manifest import FORMAT_VERSION, Manifest, ModalitySpec

__all__ = ['Bundle', 'BundleError', 'FORMAT_VERSION', 'Manifest', 'ModalitySpec', 'load_bundle', 'save_bundle']
