"""Training of both stages: config (YAML -> dataclass), batches, one step per stage, the loop."""
