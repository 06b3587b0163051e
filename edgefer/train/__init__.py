"""Training: recipes (config), the tf.data pipeline, per-epoch checkpointing, the run itself."""
