"""twingap.train."""
