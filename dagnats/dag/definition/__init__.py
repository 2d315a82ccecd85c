"""The workflow language: models, builder, validation rules, graph helpers, conditions, schemas.

Pure. May import :mod:`dagnats.protocol` and :mod:`dagnats.errors`; never the machine, the
NATS seam or a role. A definition is data: nothing here knows how a run advances.
"""
