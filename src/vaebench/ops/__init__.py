"""Apart from the pipeline: the team stack on loopback."""
