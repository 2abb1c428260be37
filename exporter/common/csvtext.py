"""CSV text as the legacy tools wrote it: a field is quoted only when it must be."""


def csv_field(value: object) -> str:
    s = str(value)
    if any(ch in s for ch in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s
