"""twingap.artifacts."""
