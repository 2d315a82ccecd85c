"""External events (``wait_for_event``, ``publish_event``) and signals (``wait_for_signal``)."""
