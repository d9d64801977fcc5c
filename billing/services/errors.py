"""The one error billing services raise for refused input or a refused state change."""


class BillingError(Exception):
    """Refused: ``code`` is machine-readable, ``field`` names the input at fault (if any).
    ``conflict`` marks a state problem (the API's 409) rather than bad input (400)."""

    def __init__(self, code: str, message: str, field: str | None = None, conflict=False):
        super().__init__(message)
        self.code = code
        self.field = field
        self.conflict = conflict

    def as_dict(self) -> dict:
        error = {"code": self.code, "message": str(self)}
        if self.field:
            error["field"] = self.field
        return error
