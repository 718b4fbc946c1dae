"""Expert-in-the-loop: explain an architecture's cost, mine rules from past searches, apply them.

The Amazon study behind hwnas found that rules read off earlier searches (fuse the early inverted
bottlenecks, align channels to the parallelism factor, replace depthwise with standard convs
where the chip favours them, use a width multiplier) reached a 50% latency reduction against 53%
for a full search. This package turns that expert step into tools: ``explain`` (per-layer cost
and what each edit would change), ``mine`` (rules from MLflow searches) and ``apply`` (rules on a
new base architecture, kept only where the estimator confirms them).
"""
