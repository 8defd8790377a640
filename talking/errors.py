"""The project's one exception type, and its one warning.

Every failure a user can cause (a file that is not audio, a photo without a face, a clip that is
too long, a checkpoint that is damaged) raises :class:`TalkingError` with a message that says what
is wrong and what to do. The CLI prints it as one line; the app shows it as a ``gr.Error``.

What only helps and cannot be done (a transcript that does not fit its speech) is a
:class:`TalkingWarning`: the video is made without it. The CLI prints it as one line; the app
shows it as a ``gr.Warning`` beside the video.
"""


class TalkingError(Exception):
    """A problem with the user's input or files, described in a message a user can act on."""


class TalkingWarning(UserWarning):
    """Something the user asked for that could not be done; the result is made without it."""
