"""The messenger-neutral conversation: intents, flows, effects, state, and the runner that
handles an update exactly once and shows nothing before it is committed."""
