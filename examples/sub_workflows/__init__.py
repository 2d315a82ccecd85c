"""A parent workflow that calls a child workflow (``wf.sub_workflow``) and sleeps durably."""
