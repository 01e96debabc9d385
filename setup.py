"""
ament_python package that is also an ordinary pip-installable Python package.

colcon (``python3-colcon-ros``) runs this file with ``setup.py install``/``develop``;
``setup.cfg`` sends the console scripts to ``lib/centralnet_ros`` there so that
``ros2 run centralnet_ros fusion_node`` finds them.  ``pip install .`` installs the
same console scripts into the environment's ``bin``.
"""
from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'centralnet_ros'


def _files(pattern):
    return [f for f in glob(pattern, recursive=True) if os.path.isfile(f)]


def _share_tree(folder, as_name=None):
    """data_files entries that mirror ``folder`` under share/centralnet_ros/ (named ``as_name`` there if given)."""
    entries = {}
    for f in _files(os.path.join(folder, '**', '*')):
        sub = os.path.relpath(os.path.dirname(f), folder)
        target = os.path.normpath(os.path.join('share', package_name, as_name or folder, sub))
        entries.setdefault(target, []).append(f)
    return sorted(entries.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks', 'benchmarks.*']),
    # the embedded demo recording travels inside the package (pip's wheel and sdist) and, for ROS tools
    # (ros2 bag play), is installed as share/centralnet_ros/demo_recording too
    package_data={package_name: ['demo_recording/*.yaml', 'demo_recording/demo_bag/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        *_share_tree('launch'),
        *_share_tree('config'),
        *_share_tree('models'),
        *_share_tree(os.path.join(package_name, 'demo_recording'), 'demo_recording'),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy>=1.24',
        'scipy>=1.10',
        'torch>=2.1',
        'safetensors>=0.4',
        'PyYAML>=6.0',
        'tqdm>=4.60',
        'matplotlib>=3.6',
        'rosbags>=0.10',
        'opencv-python-headless>=4.7,<5',  # 5.x dropped the Haar cascades (face crops)
        'onnx>=1.15',
        'onnxruntime>=1.17',
        'onnxscript>=0.1',
        'sounddevice>=0.4.6',
    ],
    extras_require={
        'test': ['pytest>=7', 'hypothesis>=6.80', 'h5py>=3.8', 'ray>=2.9',
                 'scikit-image>=0.21'],   # scikit-image: real photographs for the mouth-stage tests
        'ray': ['ray>=2.9'],          # centralnet compare --ray: sweeps on a Ray cluster
        'datasets': ['h5py>=3.8'],    # MM-IMDb's HDF5 file
        'mediapipe': ['mediapipe>=0.10.14,<0.11'],   # optional mouth-stage detector (legacy face detection, offline)
        # openSMILE reference features (audEERING Research License: non-commercial only; binds derived models)
        'opensmile': ['opensmile>=2.4'],
    },
    zip_safe=True,
    maintainer='centralnet_ros developers',
    maintainer_email='centralnet-ros@users.noreply.github.com',
    description='Multimodal perception for social robots: CentralNet fusion of RGB, depth, '
                'audio and skeleton streams, published as gesture, speech and emotion labels.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'centralnet = centralnet_ros.cli:main',
            'fusion_node = centralnet_ros.ros.fusion_node:main',
            'microphone_node = centralnet_ros.ros.microphone_node:main',
        ],
    },
)
