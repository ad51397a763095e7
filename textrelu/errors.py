"""Errors that the CLI turns into a clear message and exit code 2 (bad usage or bad input)."""


class TextreluError(Exception):
    """Bad input or bad usage: the message says what is wrong and where (file, row)."""


class BadInput(TextreluError):
    """An input file or row that cannot be used as asked."""


class Diverged(TextreluError):
    """Training blew up (a loss or a weight became NaN or inf): the settings are at fault, most
    often the learning rate; nothing is saved."""


class BadSetting(BadInput):
    """A setting of the wrong type or out of range; `where` says where it was given (a pipeline
    table), and the CLI names it as its option (--key)."""

    def __init__(self, key: str, problem: str, where: str = ""):
        super().__init__(f"{where}{key} {problem}")
        self.key, self.problem, self.where = key, problem, where
