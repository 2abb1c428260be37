# The C fold (_fold.c): adds a chunk of plain rows (text, or UTF-8 bytes as read) to `tally`, or returns
# None and adds nothing.
def fold(chunk: str | bytes | memoryview, fallback_column: int, sketch: bool,
         tally: object) -> tuple[str, str, int, int] | None: ...
