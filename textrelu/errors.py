"""Errors that the CLI turns into a clear one-line message and an exit code: 2 for bad usage or
bad input, 1 for training that failed (the data was fine, the settings made the network unusable)."""


class TextreluError(Exception):
    """Bad input or bad usage: the message says what is wrong and where (file, row)."""

    exit_code = 2


class BadInput(TextreluError):
    """An input file or row that cannot be used as asked."""


class TooLarge(BadInput):
    """The data and the settings need more memory than the machine has; the message says how
    much, and what to make smaller."""


class TrainingFailed(TextreluError):
    """Training ended with a network that must not be saved as a model; the message says what to
    change. Exit code 1: the input was usable, the run failed."""

    exit_code = 1


class Diverged(TrainingFailed):
    """Training blew up (a loss or a weight became NaN or inf): the settings are at fault, most
    often the learning rate; nothing is saved."""


class DeadNetwork(TrainingFailed):
    """A hidden layer went silent (its rectifiers all zero for most reviews), so the network gives
    the same output whatever the review; nothing is saved."""


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that temporaries are cleaned up on the way out."""


class BadSetting(BadInput):
    """A setting of the wrong type or out of range; `where` says where it was given (a pipeline
    table), and the CLI names it as its option (--key)."""

    def __init__(self, key: str, problem: str, where: str = ""):
        super().__init__(f"{where}{key} {problem}")
        self.key, self.problem, self.where = key, problem, where
