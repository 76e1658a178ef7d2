"""Across DVC experiments: the study of a sweep and the literature's protocol."""
