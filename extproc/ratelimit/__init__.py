"""Rate limits: which rules apply to a request, their bucket keys, and the headers clients read."""
