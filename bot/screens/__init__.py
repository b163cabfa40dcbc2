"""Messenger-neutral screens: the shared markup, screens and buttons, and the layouts of every
screen and push as pure functions of plain data."""
