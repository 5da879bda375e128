"""Evaluation: the "Also Read" lists scored on labelled news sets, next to a keyword baseline."""
