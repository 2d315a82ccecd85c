"""The seed tutorial: greet -> uppercase -> reverse, with retry and timeout options."""
