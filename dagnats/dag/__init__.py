"""The pure core: the workflow language (:mod:`.definition`) and the run machine (:mod:`.machine`).

Nothing here does I/O or imports nats-py; both parts are tested exhaustively without a server.
"""
