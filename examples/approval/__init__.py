"""Human-in-the-loop: a deploy that waits for an approval token to be approved or rejected."""
