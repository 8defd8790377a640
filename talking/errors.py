"""The project's one exception type.

Every failure a user can cause (a file that is not audio, a photo without a face, a clip that is
too long, a checkpoint that is damaged) raises :class:`TalkingError` with a message that says what
is wrong and what to do. The CLI prints it as one line; the app shows it as a ``gr.Error``.
"""


class TalkingError(Exception):
    """A problem with the user's input or files, described in a message a user can act on."""
