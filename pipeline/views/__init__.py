"""What the command line and the review app show: Rich renderables built from the core's results.

One module per subject; `tables` holds the pieces they share. Nothing here reads markup out of data:
every value from a dataset or a model goes in as Text, control characters shown.
"""
