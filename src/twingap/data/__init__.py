"""twingap.data."""
