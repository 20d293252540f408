"""R-ANALYSIS-LIMIT: what the static analysis could not see.

A script that cannot be parsed, or that hit a limit of the analysis (nesting,
recursion, size, time), is never passed on the strength of what was not read: it
gets review, naming the limit. Findings on the parts that were read still stand.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..report import Finding
from ..rules import Rule, check
from ..static import ScriptContext


@check("script.analysis", kind="script")
def analysis(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    _ = ctx.events  # the trace records the limits it hits
    if ctx.parse_error and not ctx.limits:
        yield rule.finding(f"script not analysed: {ctx.parse_error}", file=ctx.path)
    for limit in dict.fromkeys(ctx.limits):
        yield rule.finding(f"analysis limit: {limit}; what lies past it was not judged", file=ctx.path)


@check("script.scoring_found", kind="script")
def scoring_found(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    """Fail closed: a script in which no scored pass over validation data can be found is not judged legal."""
    from ..static.verdicts import val_scores

    if ctx.module is None or ctx.parse_error:
        return
    if not ctx.module.body:  # an empty file, or comments only: the folder holds no code at all
        yield rule.finding(
            f"the entry script has no code ({len(ctx.source.encode())} bytes, not one statement): "
            "nothing in the folder computes the reported number",
            file=ctx.path,
        )
        return
    if not val_scores(ctx.events) and not ctx.limits:
        yield rule.finding(
            "no scoring of validation tokens was found in the entry script (its data loader or "
            "its loss is outside what the analysis follows), so how the reported number is "
            "computed could not be judged",
            file=ctx.path,
        )
