"""An agent loop: ``Continue`` until done, bounded by ``max_iterations``, with checkpoints."""
