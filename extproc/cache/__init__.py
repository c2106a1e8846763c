"""The response cache: keys built from canonical requests, entries as canonical answers."""
