"""The on-device runtime (installed as `edgefer.device`): numpy, OpenCV and a TFLite runtime only.

Never import TensorFlow or Keras here: a Raspberry Pi does not have them.
"""
