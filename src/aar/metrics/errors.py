"""The error type of the metrics package."""


class MetricError(ValueError):
    """A metric cannot be computed from the given input (too few clips, no pairs, ...).

    The message says what is missing and the minimum needed.
    """
