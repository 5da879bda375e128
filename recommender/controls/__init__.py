"""Editors' control over the lists: standing rules (pins, blocks, exclusions with expiry), applied in the one read
call, and "why this?" reasons. Public face: :class:`~.rules.Rule`, :func:`~.rules.add_rule`,
:func:`~.rules.delete_rules`, :func:`~.rules.list_rules`."""

from recommender.controls.rules import Rule, RuleBook, add_rule, delete_rules, list_rules

__all__ = ["Rule", "RuleBook", "add_rule", "delete_rules", "list_rules"]
