"""`edgefer daemon`, the camera service: config, the frame loop, per-camera capture, tracks and
events, the status server and the outputs. Runs on the device (numpy, OpenCV, a TFLite
runtime); the pipeline it drives is edgefer.device's, shared with `edgefer detect`."""
