"""Ranking: from nearest neighbours to an "Also Read" list, and the stored lists that make serving a lookup."""
