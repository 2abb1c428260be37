import logging

from exporter.logfmt import LogfmtFormatter, quote


def test_quote_escapes_backslash_quote_and_line_breaks():
    assert quote('a "b" c') == r'"a \"b\" c"'
    assert quote("C:\\new\nline\r") == r'"C:\\new\nline\r"'
    # A backslash before a quote stays two characters of its own: \\ then \"
    assert quote('\\"') == r'"\\\""'


def test_a_record_is_one_line_whatever_it_carries():
    record = logging.LogRecord("orchex", logging.WARNING, __file__, 1, "file %s\nmissing", ("x\\y",), None)
    line = LogfmtFormatter().format(record)
    assert "\n" not in line
    assert line.endswith(r'level=warn msg="file x\\y\nmissing"')
