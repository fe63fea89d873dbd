"""The one place that decides who may see and do what. Pure: it reads the models and the principal, never I/O.

    rules.py     the rule for an op and a principal; who may call at all; what rules read of a principal
                 (the variable key that cache entries and realtime groups share)
    sql.py       the SQL form: rules in WHERE clauses, guards as CASE, the checks of a written row
    live.py      the Python form: what a change shows each group of realtime subscribers
    filters.py   clients' filters: bound once (through relations only what the reader may view), cost-checked,
                 kept from realtime where Python cannot answer them (`@@`), and the read cache's keys
    channels.py  who may join a channel
    functions.py who may call a server function

The records service, realtime, channels and the read cache call these; nothing else decides.
"""
from .channels import NAME, may_join
from .functions import compile_allow, may_call
from .filters import (BoundFilter, anyone_key, anyone_sees, bound_filter, client_filter, query_key, realtime_filter,
                      rule_fields)
from .rules import check_caller, reads, rule_for, variable_key
from .sql import JUDGED, Schemas, Sql, judged_together, missing_related, refuse_judged, refuse_unless_allowed

__all__ = ["JUDGED", "NAME", "BoundFilter", "Schemas", "Sql", "anyone_key", "anyone_sees", "bound_filter", "check_caller", "client_filter", "compile_allow", "judged_together", "may_call", "may_join",
           "missing_related", "query_key", "reads", "realtime_filter", "refuse_judged", "refuse_unless_allowed", "rule_for", "rule_fields",
           "variable_key"]
