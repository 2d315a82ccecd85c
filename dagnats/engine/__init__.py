"""The engine role: a durable consumer on ``history.>`` that advances runs (:mod:`.engine`)."""
