"""twingap.evaluate."""
