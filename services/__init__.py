"""The domain: statuses, permissions, applications, linking, the notifications outbox.

Nothing here imports aiogram, so another messenger front end can reuse it.
"""
