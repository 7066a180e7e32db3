"""twingap.assets."""
