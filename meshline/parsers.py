"""Request parsers of the API (their own module: DRF settings import them early)."""

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested too deep for Python's parser answered 400.

    ``json`` raises RecursionError (not ValueError, which DRF turns into a 400) at about a
    thousand levels. Shallower nesting is limited later, per field (deliveries.jsonlimits).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
