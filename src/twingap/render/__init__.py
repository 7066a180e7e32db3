"""twingap.render."""
