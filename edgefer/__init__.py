"""edgefer: facial-expression recognition from training to the edge device.

Importing this package must stay cheap and TensorFlow-free: the device runtime
(`edgefer.device`) runs on a Raspberry Pi that has only numpy, OpenCV and a TFLite runtime.
"""

__version__ = "0.1.0"
