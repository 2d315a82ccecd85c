"""Redrive: a batch of imports fails during an outage, then resumes where each run stopped."""
