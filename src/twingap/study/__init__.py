"""twingap.study."""
