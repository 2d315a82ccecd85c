"""Fan-out / fan-in: fetch a list, ``wf.map`` a task over it, gather the results."""
