# The C fold (_fold.c): adds a chunk of plain rows (text, or UTF-8 bytes as read) to `tally`, or returns
# None and adds nothing.
def fold(chunk: str | bytes | memoryview, fallback_column: int, sketch: bool,
         tally: object) -> tuple[str, str, int, int] | None: ...

# The same chunk grouped by raw key for a tally that renames, budgets or buckets (Tally._fold_groups):
# (first, last, rows, rows with the fallback column,
#  [(category, model, "true"/"false", gpu, rows, confidence sum, score sum, duration sum, fallbacks)],
#  [each row's key], [each row's duration]), or None.
def group(chunk: str | bytes | memoryview, fallback_column: int) -> tuple[
    str, str, int, int, list[tuple[str, str, str, str, int, float, float, float, int]], list[int], list[float]
] | None: ...
