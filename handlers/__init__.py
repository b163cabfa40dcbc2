"""The front ends' translation of their messengers' updates into the conversation
(bot/conversation/), and nothing more: one module per messenger."""
