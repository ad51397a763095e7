"""Errors that the CLI turns into a clear message and exit code 2 (bad usage or bad input)."""


class TextreluError(Exception):
    """Bad input or bad usage: the message says what is wrong and where (file, row)."""


class BadInput(TextreluError):
    """An input file or row that cannot be used as asked."""


class Diverged(TextreluError):
    """Training blew up (a loss or a weight became NaN or inf): the settings are at fault, most
    often the learning rate; nothing is saved."""
