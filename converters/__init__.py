"""Model converters (installed as `edgefer.converters`): Keras -> TFLite / ONNX bundles."""
