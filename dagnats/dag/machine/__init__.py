"""The run machine: ``advance(definition, state, event) -> (state, actions)`` and its parts.

Pure. May import :mod:`dagnats.dag.definition`, :mod:`dagnats.protocol` and
:mod:`dagnats.errors`; never the NATS seam or a role. Step types are looked up in one table
(:mod:`._table`), so a new step type is added to the machine in one place.
"""
