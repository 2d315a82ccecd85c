"""A booking saga: compensations undo completed steps in reverse order; on_failure recovers."""
