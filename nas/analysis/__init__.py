"""Analyses built on the search stack: the latency landscape of a space, strategy comparisons
and the ablation of the seed work."""
