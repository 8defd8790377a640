"""Training: recipes (recipe.py) validated into a config (config.py), batches, one step per
stage (steps.py), the Accelerate loop (loop.py) with its checkpoints, validation and export."""
